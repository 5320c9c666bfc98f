"""The demo's path: light install (no mmcv ops, no mmdet), determinism, baselines, summary."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from tests.conftest import MINI, ROOT


def _subset(tmp_path, split, per_class):
    lines = [f'{c}/{i:04d}.jpg' for c in sorted(os.listdir(osp.join(MINI, split)))
             for i in range(per_class)]
    p = tmp_path / f'{split}{per_class}.txt'
    p.write_text('\n'.join(lines) + '\n')
    return str(p)


def tiny_demo_options(tmp_path, epochs=2, workers=2):
    """The demo config at width 4 on 80 train / 30 test images (the online kNN validation
    too): seconds per run."""
    return {
        'model.backbone.base_channels': 4,
        'model.neck.in_channels': 32, 'model.neck.hid_channels': 32,
        'model.neck.out_channels': 16, 'model.predictor.in_channels': 16,
        'model.predictor.hid_channels': 32, 'model.predictor.out_channels': 16,
        'model.memory_bank.size': 64, 'model.memory_bank.dim': 16,
        'train_dataloader.batch_size': 16, 'train_dataloader.num_workers': workers,
        'train_dataloader.persistent_workers': workers > 0,
        'train_dataloader.dataset.ann_file': _subset(tmp_path, 'train', 8),
        'knn_train_dataloader.dataset.ann_file': _subset(tmp_path, 'train', 8),
        'knn_test_dataloader.dataset.ann_file': _subset(tmp_path, 'test', 3),
        'val_dataloader.dataset.ann_file': _subset(tmp_path, 'test', 3),  # online kNN too
        'train_cfg.max_epochs': epochs,
        'param_scheduler': [dict(type='CosineAnnealingLR', T_max=epochs, by_epoch=True,
                                 begin=0, end=epochs)],
        'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint.interval': epochs,
    }


BLOCK_HOOK = '''
import sys
# None in sys.modules: `import` raises ModuleNotFoundError and find_spec() answers None, exactly
# as when the module is not installed (mmengine probes mmcv._ext with pkgutil.find_loader).
BLOCKED = ('mmdet', 'mmcv._ext', 'mmcv.ops')
for name in BLOCKED:
    sys.modules[name] = None
'''


@pytest.mark.slow
def test_demo_needs_neither_mmcv_ops_nor_mmdet(tmp_path):
    """Pre-training + the three kNNs in a process where mmcv._ext and mmdet cannot load."""
    opts = tiny_demo_options(tmp_path, epochs=1, workers=0)
    script = BLOCK_HOOK + f'''
import json
from mmmsf.apis import run_demo
res = run_demo('configs/demo/msf_r18_cifar10mini_ws.py', {str(tmp_path / 'run')!r},
               cfg_options={opts!r}, seed=0, num_bootstrap=200)
loaded = sorted(m for m, mod in sys.modules.items() if mod is not None
                and any(m == b or m.startswith(b + '.') for b in BLOCKED))
for name in BLOCKED:
    try:
        __import__(name)
        loaded.append(name + ' imported')
    except ModuleNotFoundError:
        pass
print('RESULT', json.dumps(dict(acc=res['accuracy'], loaded=loaded, ckpt=res['checkpoint'])))
'''
    out = subprocess.run([sys.executable, '-c', script], cwd=ROOT, capture_output=True,
                         text=True, timeout=600, env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.split('RESULT', 1)[1])
    assert res['loaded'] == []
    assert set(res['acc']) == {'random', 'pixels', 'trained'}
    assert osp.isfile(res['ckpt'])


@pytest.mark.slow
def test_two_identical_demo_runs_give_identical_losses_and_knn(tmp_path):
    from mmmsf.apis import format_demo, run_demo
    opts = tiny_demo_options(tmp_path, epochs=2, workers=2)
    runs = [run_demo(osp.join(ROOT, 'configs/demo/msf_r18_cifar10mini_ws.py'),
                     str(tmp_path / f'run{i}'), cfg_options=opts, seed=3, num_bootstrap=300)
            for i in range(2)]
    a, b = runs
    assert len(a['losses']) == 2 * 5 and a['losses'] == b['losses']
    assert a['accuracy'] == b['accuracy'] and a['gain'] == b['gain']
    for name in ('random', 'pixels', 'trained'):
        for m in ('1-NN', '20-NN'):
            assert torch.equal(a['correct'][name][m], b['correct'][name][m])
    # trained weights differ from random init, so the kNN results are of different features
    assert a['correct']['trained']['1-NN'].shape == (30, )
    text = format_demo(a)
    for piece in ('random init', 'raw pixels', 'MSF, trained', 'over raw pixels',
                  a['checkpoint'], 'Next:', 'tools/setup_env.sh --full', 'linear_eval.py'):
        assert piece in text


def test_seed_spread_table():
    from mmmsf.apis.demo import format_seeds, seed_spread

    def run(t1, g):
        acc = {'random': {'1-NN': 20.0, '20-NN': 25.0}, 'pixels': {'1-NN': 28.0, '20-NN': 27.0},
               'trained': {'1-NN': t1, '20-NN': t1 + 3}}
        gain = {b: {m: dict(gain=acc['trained'][m] - acc[b][m], low=g, high=g + 5)
                    for m in acc['trained']} for b in ('random', 'pixels')}
        return dict(accuracy=acc, gain=gain)

    runs = [run(30.0, 1.0), run(32.0, 2.0), run(34.0, 0.5)]
    metrics = ('1-NN', '20-NN')
    out = dict(seeds=[0, 1, 2], machine='test box', runs=runs,
               spread={n: {m: seed_spread([r['accuracy'][n][m] for r in runs]) for m in metrics}
                       for n in ('random', 'pixels', 'trained')},
               gain_spread={b: {m: seed_spread([r['gain'][b][m]['gain'] for r in runs])
                                for m in metrics} for b in ('random', 'pixels')})
    text = format_seeds(out)
    assert '| MSF, trained | 32.0 ± 2.0 (30.0-34.0) | 35.0 ± 2.0 (33.0-37.0) |' in text
    assert '| gain over raw pixels | 4.0 ± 2.0 (2.0-6.0) |' in text
    assert 'over raw pixels 1-NN +0.5' in text and 'test box' in text
