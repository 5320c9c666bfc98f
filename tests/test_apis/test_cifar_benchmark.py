"""tools/cifar_benchmark.py end to end on a few hundred real images, and the shipped backbone."""
import json
import os
import os.path as osp
import shutil

import pytest

from mmmsf.apis.cifar_benchmark import BENCHMARK_CONFIGS, config_stem, run_cifar_benchmark
from tests.conftest import MINI, ROOT


def _small_folder(root, per_class_train=20, per_class_test=10):
    """An ImageFolder of the first images of each class of the bundled set."""
    for split, n in (('train', per_class_train), ('test', per_class_test)):
        for c in sorted(os.listdir(osp.join(MINI, split))):
            os.makedirs(osp.join(root, split, c))
            for i in range(n):
                shutil.copy(osp.join(MINI, split, c, f'{i:04d}.jpg'), osp.join(root, split, c))
    return str(root)


OPTIONS = {'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 1,
           'train_dataloader.batch_size': 32, 'train_dataloader.num_workers': 0,
           'train_dataloader.persistent_workers': False, 'model.memory_bank.size': 256,
           'default_hooks.logger.interval': 1, 'default_hooks.checkpoint.interval': 1}


@pytest.mark.slow
def test_benchmark_end_to_end_and_deterministic(tmp_path):
    data = _small_folder(tmp_path / 'data')
    pages = []
    for run in ('a', 'b'):
        work = tmp_path / run
        page = str(work / 'page' / 'cifar_hour.md')
        os.makedirs(osp.dirname(page))
        readme = work / 'README.md'
        readme.write_text('x\n<!-- cifar-hour-table:start -->\nold\n<!-- cifar-hour-table:end -->\n')
        res = run_cifar_benchmark(BENCHMARK_CONFIGS, (0, ), data, str(work / 'runs'), page,
                                  str(work / 'ckpt'), str(readme), dict(OPTIONS))
        msf, byol = (res[f'{config_stem(c)}|seed0'] for c in BENCHMARK_CONFIGS)
        assert msf['num_images'] == dict(train=200, test=100)
        assert msf['images_seen'] == 6 * 32  # one epoch: 200 // 32 steps of 32
        for r in (msf, byol):
            assert set(r['accuracy']) == {'trained', 'random', 'pixels'}
            for b in ('random', 'pixels'):
                g = r['gain'][b]['20-NN']
                assert g['low'] <= g['gain'] <= g['high'] and g['num_images'] == 100
        summary = json.load(open(osp.splitext(page)[0] + '.json'))
        cmp = summary['first_minus_second']['0']['20-NN']
        assert cmp['gain'] == pytest.approx(msf['accuracy']['trained']['20-NN']
                                            - byol['accuracy']['trained']['20-NN'])
        text = open(page).read()
        assert 'raw pixels' in text and 'random init' in text and '[' in text
        assert osp.isfile(osp.splitext(page)[0] + '_curves.png')
        ckpt = work / 'ckpt' / f'{config_stem(BENCHMARK_CONFIGS[0])}.pth'
        assert summary['export']['path'] == str(ckpt) and ckpt.stat().st_size < 5 * 2**20
        assert 'old' not in readme.read_text() and 'gain over raw pixels' in readme.read_text()
        pages.append((summary['runs'], [r['correct'] for r in (msf, byol)]))
        # a second call finds every run done: nothing is trained again
        again = run_cifar_benchmark(BENCHMARK_CONFIGS, (0, ), data, str(work / 'runs'), page,
                                    None, None, dict(OPTIONS))
        assert again[f'{config_stem(BENCHMARK_CONFIGS[0])}|seed0']['seconds'] == msf['seconds']
    (runs_a, correct_a), (runs_b, correct_b) = pages
    assert correct_a == correct_b
    for key in runs_a:
        assert runs_a[key]['accuracy'] == runs_b[key]['accuracy']
        assert runs_a[key]['gain'] == runs_b[key]['gain']


def test_shipped_backbone_scores_what_its_page_states():
    """checkpoints/<config stem>.pth: weights-only, backbone only, and tools/knn_eval.py's
    number on the bundled images is the one docs/benchmarks/cifar_hour.json states."""
    from mmmsf.apis import knn_from_config, load_config
    from mmmsf.utils.checkpoint import safe_load
    summary = json.load(open(osp.join(ROOT, 'docs', 'benchmarks', 'cifar_hour.json')))
    export = summary['export']
    ckpt = osp.join(ROOT, export['path'])
    assert osp.basename(ckpt) == config_stem(export['config']) + '.pth'
    assert osp.getsize(ckpt) <= 5 * 2**20
    state = safe_load(ckpt)['state_dict']
    assert state and all(k.startswith('backbone.') for k in state)
    got = knn_from_config(load_config(osp.join(ROOT, export['config'])), ckpt, device='cpu')
    assert got == pytest.approx(export['bundled_knn'], abs=1e-9)
