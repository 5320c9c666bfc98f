import os
import os.path as osp

import numpy as np
import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MINI = osp.join(ROOT, 'data', 'cifar10_mini')

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _scope():
    from mmengine.registry import init_default_scope
    init_default_scope('mmmsf')
    yield


@pytest.fixture
def one_thread():
    """Tiny matrices: one thread is faster, and immune to a busy machine's thread contention
    (``pytestmark = pytest.mark.usefixtures('one_thread')`` in a test file)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_msf_cfg(size: int = 64, dim: int = 16, topk: int = 3, width: int = 8, **kw) -> dict:
    """A few-thousand-parameter MSF (small-stem ResNet-18 of width 8)."""
    cfg = dict(
        type='MSF',
        backbone=dict(type='ResNet', depth=18, stem='small', base_channels=width),
        neck=dict(type='MLPNeck', in_channels=width * 8, hid_channels=32, out_channels=dim),
        predictor=dict(type='MLPNeck', in_channels=dim, hid_channels=32, out_channels=dim),
        memory_bank=dict(type='NNMemoryBank', size=size, dim=dim), topk=topk)
    cfg.update(kw)
    return cfg


@pytest.fixture
def image_folder(tmp_path):
    """A generated ImageFolder: 3 classes x 6 JPEGs of 24x24 px."""
    import cv2
    rng = np.random.default_rng(0)
    for c in range(3):
        d = tmp_path / 'train' / f'class{c}'
        d.mkdir(parents=True)
        for i in range(6):
            img = (rng.random((24, 24, 3)) * 80 + c * 80).astype(np.uint8)
            cv2.imwrite(str(d / f'{i:03d}.jpg'), img)
    return tmp_path


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: runs a real training job (seconds to a minute)')
    config.addinivalue_line('markers', 'cuda: needs a CUDA GPU (skipped, with the reason, '
                            'where torch sees none); `pytest -m cuda` runs only these')


def pytest_collection_modifyitems(config, items):
    """Skip ``cuda``-marked tests, with a visible reason, where torch sees no CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason='needs a CUDA GPU: torch.cuda.is_available() is False here '
                                   '(run on a GPU machine: bash tools/gpu_selfcheck.sh)')
    for item in items:
        if item.get_closest_marker('cuda') is not None:
            item.add_marker(skip)
