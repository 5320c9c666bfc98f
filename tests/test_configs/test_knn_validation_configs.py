"""Every pre-training config validates with online kNN: the demo configs every epoch on the
whole memory set, the paper configs every 10 epochs on a class-balanced 10% of ImageNet."""
import glob
import os.path as osp

import pytest

from mmmsf.apis import load_config
from mmmsf.apis.train import disable_validation, enable_tensorboard
from tests.conftest import ROOT

PAPER = sorted(glob.glob(osp.join(ROOT, 'configs', '*', '*_200e.py')))
DEMO = sorted(glob.glob(osp.join(ROOT, 'configs', 'demo', '*.py')))


def test_config_sets_are_complete():
    assert len(PAPER) >= 10 and len(DEMO) >= 8
    assert {osp.basename(osp.dirname(p)) for p in PAPER} == {'msf', 'byol', 'cmsf'}


@pytest.mark.parametrize('path', PAPER + DEMO, ids=lambda p: osp.relpath(p, ROOT))
def test_pretraining_config_has_online_knn(path):
    cfg = load_config(path)
    assert cfg.val_cfg.type == 'KNNValLoop' and cfg.val_evaluator.type == 'KNNAccuracy'
    assert tuple(cfg.val_evaluator.ks) == (1, 20) and not cfg.val_evaluator.weighted
    # the query set is the kNN test split of tools/knn_eval.py, through the same pipeline
    assert cfg.val_dataloader.dataset == cfg.knn_test_dataloader.dataset
    assert cfg.val_dataloader.sampler == dict(type='DefaultSampler', shuffle=False)
    if path in DEMO:
        assert cfg.train_cfg.val_interval == 1 and not cfg.val_cfg.get('memory_subset')
    else:
        assert cfg.train_cfg.val_interval == 10
        assert cfg.val_cfg.memory_subset == dict(fraction=0.1, seed=0)
        assert cfg.val_dataloader.dataset.data_prefix == 'val'


def test_switches_turn_validation_off_and_tensorboard_on():
    cfg = load_config(DEMO[0])
    disable_validation(cfg)
    assert cfg.val_cfg is None and cfg.val_dataloader is None and cfg.val_evaluator is None
    enable_tensorboard(cfg)
    enable_tensorboard(cfg)  # once only
    backends = [b['type'] for b in cfg.visualizer.vis_backends]
    assert backends == ['LocalVisBackend', 'TensorboardVisBackend']
