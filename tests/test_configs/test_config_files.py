"""Every config parses, passes the key check, and builds its model; bad keys fail clearly."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmmsf.apis import check_config_keys, load_config
from mmmsf.registry import MODELS
from tests.conftest import ROOT

CONFIGS = sorted(c for c in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
                 if '_base_' not in c and 'benchmarks/detection' not in c
                 and 'benchmarks/linear' not in c)  # linear: test_evaluation/test_eval_linear.py


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, ROOT))
def test_config_builds_model(path):
    cfg = load_config(path)
    model = MODELS.build(cfg.model)
    assert model.memory_bank.size % 256 == 0 or 'demo' in path or 'study' in path
    assert model.memory_bank.size >= model.topk
    if 'train_dataloader' in cfg:
        pipe = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
        if cfg.model.data_preprocessor.type == 'BatchViewsDataPreprocessor':
            assert 'RecordAugSeed' in pipe and 'MultiView' not in pipe  # views made on the batch
        else:
            assert 'MultiView' in pipe
    del model


def test_paper_hyper_parameters():
    cfg = load_config(osp.join(ROOT, 'configs/msf/msf_r50_200e.py'))
    assert cfg.model.memory_bank.size == 1024000 and cfg.model.topk == 5
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=0.05, momentum=0.9,
                                               weight_decay=1e-4)
    assert cfg.train_cfg.max_epochs == 200
    assert cfg.train_dataloader.batch_size * 8 == 256
    views = cfg.train_dataloader.dataset.pipeline[1]['transforms']
    assert [t['type'] for t in views[0]] == ['RandomResizedCrop', 'RandomFlip']  # weak target
    assert 'GaussianBlur' in [t['type'] for t in views[1]]  # strong online
    assert load_config(osp.join(ROOT, 'configs/msf/msf_r50_128k_200e.py')
                       ).model.memory_bank.size == 128000
    assert load_config(osp.join(ROOT, 'configs/byol/byol_asym_r50_200e.py')).model.topk == 1


def test_unknown_config_key_is_an_error(tmp_path):
    p = tmp_path / 'typo.py'
    p.write_text(f"_base_ = '{ROOT}/configs/demo/msf_r18_cifar10mini_ws.py'\n"
                 "train_dataloadr = dict(batch_size=4)\n")
    with pytest.raises(KeyError, match="did you mean 'train_dataloader'"):
        load_config(str(p))
    with pytest.raises(KeyError, match=r'model\.topkk \(did you mean model\.topk\?\)'):
        load_config(osp.join(ROOT, 'configs/demo/msf_r18_cifar10mini_ws.py'),
                    {'model.topkk': 3})
