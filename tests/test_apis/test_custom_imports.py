"""A selector, a loss and a hook from a user's own file outside the package, named only through
mmengine's ``custom_imports``, train the model; every tool's config reader accepts the key."""
import json
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest

from mmmsf.apis import load_config
from tests.conftest import MINI, ROOT

MY_PARTS = textwrap.dedent('''
    """A user's own parts (outside the mmmsf package)."""
    import json, os
    from mmengine.hooks import Hook
    from mmmsf.registry import HOOKS, MODELS
    from mmmsf.models.losses.mean_shift_loss import MeanShiftLoss
    from mmmsf.models.selectors.topk_selector import TopKSelector

    CALLS = dict(selector=0, loss=0)


    @MODELS.register_module(force=True)
    class CountingTopKSelector(TopKSelector):
        def select(self, query, bank, k, **side):
            CALLS['selector'] += 1
            return super().select(query, bank, k, **side)


    @MODELS.register_module(force=True)
    class ScaledMeanShiftLoss(MeanShiftLoss):
        def __init__(self, scale=1.0, **kw):
            super().__init__(**kw)
            self.scale = scale

        def forward(self, *args, **kw):
            CALLS['loss'] += 1
            return self.scale * super().forward(*args, **kw)


    @HOOKS.register_module(force=True)
    class PartsReportHook(Hook):
        def __init__(self, note=''):
            self.note, self.iters = note, 0

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            self.iters += 1

        def after_run(self, runner):
            with open(os.path.join(runner.work_dir, 'parts_report.json'), 'w') as f:
                json.dump(dict(CALLS, hook_iters=self.iters, note=self.note,
                               modules=sorted({type(m).__name__ for m in runner.model.modules()
                                               if type(m).__module__ == __name__})), f)
''')


def _user_dir(tmp_path):
    d = tmp_path / 'my_project'
    d.mkdir()
    (d / 'my_parts.py').write_text(MY_PARTS)
    return d


def test_custom_imports_train_with_a_users_selector_loss_and_hook(tmp_path):
    user = _user_dir(tmp_path)
    lines = [f'{c}/{i:04d}.jpg' for c in sorted(os.listdir(osp.join(MINI, 'train')))
             for i in range(2)]
    (tmp_path / 'subset.txt').write_text('\n'.join(lines) + '\n')
    demo = osp.join(ROOT, 'configs', 'demo', 'msf_r18_cifar10mini_ws.py')
    (user / 'my_config.py').write_text(textwrap.dedent(f'''
        _base_ = [{demo!r}]
        custom_imports = dict(imports=['my_parts'], allow_failed_imports=False)
        model = dict(selector=dict(type='CountingTopKSelector'),
                     loss=dict(type='ScaledMeanShiftLoss', scale=100.0))
        custom_hooks = [
            dict(type='MomentumUpdateHook', momentum=0.99),
            dict(type='NNMemoryBankHook', interval=5),
            dict(type='RandomStateHook'),
            dict(type='PartsReportHook', note='from my_parts'),
        ]
    '''))
    opts = ['model.backbone.base_channels=8', 'model.neck.in_channels=64',
            'model.neck.hid_channels=32', 'model.neck.out_channels=16',
            'model.predictor.in_channels=16', 'model.predictor.hid_channels=32',
            'model.predictor.out_channels=16', 'model.memory_bank.size=64',
            'model.memory_bank.dim=16', 'train_dataloader.batch_size=8',
            f'train_dataloader.dataset.ann_file={tmp_path / "subset.txt"}',
            f'train_dataloader.dataset.data_root={MINI}', 'train_cfg.max_epochs=1',
            'default_hooks.logger.interval=1']
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, str(user)]))
    env.pop('MMMSF_ERROR_DIR', None)
    work = tmp_path / 'work'
    p = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'train.py'),
                        str(user / 'my_config.py'), '--work-dir', str(work),
                        '--cfg-options', *opts], cwd=str(tmp_path), env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    report = json.loads((work / 'parts_report.json').read_text())
    # 20 images / batch 8 (drop_last): 2 iterations, one selection and one loss call each
    assert report == dict(selector=2, loss=2, hook_iters=2, note='from my_parts',
                          modules=['CountingTopKSelector', 'ScaledMeanShiftLoss'])
    logged = [json.loads(ln) for ln in open(next(work.glob('*/vis_data/scalars.json')))]
    assert all(r['loss'] > 4.0 for r in logged if 'loss' in r)  # x100: the user's loss ran


@pytest.mark.parametrize('config', [
    'configs/demo/msf_r18_cifar10mini_ws.py',                      # train, dist_train, kNN
    'configs/benchmarks/linear/linear_r18_cifar10mini_demo.py',    # linear
    'configs/benchmarks/linear/transfer_r18_cifar10mini_demo.py',  # transfer
])
def test_every_config_reader_imports_custom_imports(config, tmp_path, monkeypatch):
    user = _user_dir(tmp_path)
    monkeypatch.syspath_prepend(str(user))
    sys.modules.pop('my_parts', None)
    cfg = load_config(osp.join(ROOT, config), {
        'custom_imports': dict(imports=['my_parts'], allow_failed_imports=False),
        'custom_hooks': [dict(type='PartsReportHook', note='x')]})
    assert 'my_parts' in sys.modules
    assert cfg.custom_hooks[0]['type'] == 'PartsReportHook'
    with pytest.raises(KeyError, match=r"custom_hooks\[0\]\.nte \(did you mean "
                                       r"custom_hooks\[0\]\.note\?\)"):
        load_config(osp.join(ROOT, config), {'custom_hooks': [dict(type='PartsReportHook',
                                                                    nte='x')],
                                             'custom_imports': dict(imports=['my_parts'])})


def test_detection_config_reader_imports_custom_imports(tmp_path, monkeypatch):
    pytest.importorskip('mmdet')
    from mmmsf.detection.config import load_detection_config
    user = _user_dir(tmp_path)
    monkeypatch.syspath_prepend(str(user))
    sys.modules.pop('my_parts', None)
    cfg = load_detection_config(
        osp.join(ROOT, 'configs', 'benchmarks', 'detection', 'faster-rcnn_r18-c4_tiny-voc_cpu.py'),
        {'custom_imports': dict(imports=['my_parts'], allow_failed_imports=False)})
    assert 'my_parts' in sys.modules and cfg.custom_imports.imports == ['my_parts']


def test_custom_import_that_fails_names_the_module(tmp_path):
    with pytest.raises(ImportError, match="cannot import \\['not_my_parts'\\].*PYTHONPATH"):
        load_config(osp.join(ROOT, 'configs', 'demo', 'msf_r18_cifar10mini_ws.py'),
                    {'custom_imports': dict(imports=['not_my_parts'],
                                            allow_failed_imports=False)})


def test_custom_import_in_the_file_that_fails_names_the_module(tmp_path):
    demo = osp.join(ROOT, 'configs', 'demo', 'msf_r18_cifar10mini_ws.py')
    (tmp_path / 'cfg.py').write_text(f"_base_ = [{demo!r}]\n"
                                     "custom_imports = dict(imports=['not_my_parts_either'])\n")
    with pytest.raises(ImportError, match="cannot import \\['not_my_parts_either'\\]"):
        load_config(str(tmp_path / 'cfg.py'))
