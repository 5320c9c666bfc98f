"""The demo writes the training-curve PNG of its run and returns its path."""
import os.path as osp

import pytest
import torch

from mmmsf.apis import run_demo
from tests.conftest import MINI, ROOT
from tests.test_evaluation.test_online_knn import knn_opts, model_opts, write_list


@pytest.mark.slow
def test_demo_writes_its_curves(tmp_path):
    opts = dict(model_opts(), **knn_opts(tmp_path))
    opts.update({'train_dataloader.batch_size': 16, 'train_dataloader.num_workers': 0,
                 'train_dataloader.persistent_workers': False,
                 'train_dataloader.dataset.ann_file': write_list(tmp_path / 't.txt', 'train', 4),
                 'train_cfg.max_epochs': 1, 'default_hooks.checkpoint.interval': 1,
                 'param_scheduler': [dict(type='CosineAnnealingLR', T_max=1, by_epoch=True)]})
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = run_demo(osp.join(ROOT, 'configs/demo/msf_r18_cifar10mini_ws.py'),
                       str(tmp_path / 'demo'), data_root=MINI, cfg_options=opts)
    finally:
        torch.set_num_threads(n)
    assert res['curves'] == str(tmp_path / 'demo' / 'curves.png')
    with open(res['curves'], 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
