"""A checkpoint that does not fit the part a tool needs is refused in one message; what the tool
does not need may differ (kNN, t-SNE, linear and transfer evaluation need only the backbone)."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmmsf.apis import load_config, prepare_train_cfg, train
from mmmsf.apis.evaluate import build_model, embeddings_from_checkpoint, knn_from_config
from mmmsf.registry import MODELS
from tests.conftest import MINI, ROOT
from tests.test_apis.test_config_errors import _outputs, _tiny

MSF_DEMO = osp.join(ROOT, 'configs', 'demo', 'msf_r18_cifar10mini_ws.py')
WIDE = {'model.backbone.base_channels': 16, 'model.neck.in_channels': 128}


def _lists(tmp_path, per_class: int = 2) -> dict:
    opts = {}
    for split in ('train', 'test'):
        lines = [f'{c}/{i:04d}.jpg' for c in sorted(os.listdir(osp.join(MINI, split)))
                 for i in range(per_class)]
        (tmp_path / f'knn_{split}.txt').write_text('\n'.join(lines) + '\n')
        opts[f'knn_{split}_dataloader.dataset.ann_file'] = str(tmp_path / f'knn_{split}.txt')
        opts[f'knn_{split}_dataloader.num_workers'] = 0
        opts[f'knn_{split}_dataloader.persistent_workers'] = False
    return opts


def _cfg(tmp_path, **extra):
    return load_config(MSF_DEMO, {**_tiny(tmp_path), **_lists(tmp_path), **extra},
                       data_root=MINI)


def _save(model, path) -> str:
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=1)), str(path))
    return str(path)


def _model(cfg, seed: int = 1):
    torch.manual_seed(seed)
    return MODELS.build(cfg.model)


def test_evaluation_loaders_refuse_another_width_in_one_message(tmp_path):
    wide = _save(_model(_cfg(tmp_path, **WIDE)), tmp_path / 'wide.pth')
    cfg = _cfg(tmp_path)
    probe = dict(type='LinearProbe', backbone=dict(cfg.model.backbone), num_classes=10,
                 pretrained=wide)
    for load in (lambda: build_model(cfg, wide), lambda: knn_from_config(cfg, wide),
                 lambda: embeddings_from_checkpoint(cfg, wide),
                 lambda: MODELS.build(probe).init_weights()):
        with pytest.raises(KeyError) as e:
            load()
        msg = e.value.args[0]
        assert '\n' not in msg and wide in msg and 'do not fit the configured backbone' in msg
        assert 'conv1.weight (16, 3, 3, 3) vs (8, 3, 3, 3)' in msg


def test_knn_needs_only_the_backbone(tmp_path):
    """Another bank size, projection width and predictor: the same kNN numbers as the
    checkpoint of the configured model with the same backbone."""
    cfg = _cfg(tmp_path)
    other = _model(_cfg(tmp_path, **{'model.memory_bank.size': 32,
                                     'model.neck.out_channels': 24,
                                     'model.predictor.in_channels': 24,
                                     'model.predictor.out_channels': 24,
                                     'model.memory_bank.dim': 24}))
    same = _model(cfg, seed=2)
    same.backbone.load_state_dict(other.backbone.state_dict())
    a = knn_from_config(cfg, _save(other, tmp_path / 'other_bank.pth'), device='cpu')
    b = knn_from_config(cfg, _save(same, tmp_path / 'same.pth'), device='cpu')
    assert a == b and set(a) == {'1-NN', '20-NN'}
    assert torch.equal(build_model(cfg, str(tmp_path / 'other_bank.pth')).backbone.conv1.weight,
                       other.backbone.conv1.weight)


def test_knn_eval_tool_refuses_another_width_and_writes_nothing(tmp_path):
    wide = _save(_model(_cfg(tmp_path, **WIDE)), tmp_path / 'wide.pth')
    opts = [f'{k}={v}' for k, v in {**_lists(tmp_path), 'model.backbone.base_channels': 8,
                                      'model.neck.in_channels': 64}.items()]
    p = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'knn_eval.py'), MSF_DEMO, wide,
                        '--data-root', MINI, '--cfg-options', *opts],
                       cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=ROOT),
                       capture_output=True, text=True, timeout=600)
    assert p.returncode != 0
    assert 'size mismatch' not in p.stdout + p.stderr
    assert 'do not fit the configured backbone' in p.stderr.strip().splitlines()[-1]
    assert not (tmp_path / 'eval').exists()


@pytest.mark.parametrize('what, opts, shown', [
    ('width', WIDE, 'backbone.conv1.weight: checkpoint (16, 3, 3, 3) vs model (8, 3, 3, 3)'),
    ('bank', {'model.memory_bank.size': 32},
     'memory_bank.bank: checkpoint (32, 16) vs model (64, 16)'),
])
def test_load_from_refuses_a_checkpoint_that_does_not_fit(tmp_path, what, opts, shown):
    ckpt = _save(_model(_cfg(tmp_path, **opts)), tmp_path / f'{what}.pth')
    cfg = prepare_train_cfg(_cfg(tmp_path, load_from=ckpt), work_dir=str(tmp_path / 'w'))
    with pytest.raises(ValueError) as e:
        train(cfg)
    msg = str(e.value)
    assert '\n' not in msg and ckpt in msg and 'does not fit this model' in msg
    assert shown in msg and 'load_from loads the whole model' in msg
    assert _outputs(tmp_path / 'w') == []


def test_load_from_a_fitting_checkpoint_starts_from_its_weights(tmp_path):
    src = _model(_cfg(tmp_path), seed=3)
    ckpt = _save(src, tmp_path / 'fits.pth')
    cfg = prepare_train_cfg(_cfg(tmp_path, load_from=ckpt, **{'train_cfg.max_epochs': 1,
                                                              'optim_wrapper.optimizer.lr': 0.0}),
                            work_dir=str(tmp_path / 'w'))
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    train(cfg)
    out = torch.load(str(tmp_path / 'w' / 'epoch_1.pth'), map_location='cpu', weights_only=True)
    # lr 0: the online backbone stays the loaded one (BN statistics move; weights do not)
    assert torch.equal(out['state_dict']['backbone.conv1.weight'], src.backbone.conv1.weight)
