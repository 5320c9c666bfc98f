import os
import os.path as osp

# One OpenMP thread for torch and faiss here and in the tools the tests start (python tools/...
# inherits the environment); set before torch loads its OpenMP runtime. See set_num_threads.
os.environ.setdefault('OMP_NUM_THREADS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MINI = osp.join(ROOT, 'data', 'cifar10_mini')

# One intra-op thread: the tests' networks are tiny, and on a busy machine (a training job on
# the same cores) a second OpenMP thread makes them several times slower, not faster
# (test_short_training_lowers_loss at load 4 on 2 cores: 44-56 s with 2 threads, 11 s with 1;
# test_study_quick_mode_end_to_end, a tools/study.py subprocess: 56 s with 2, 20 s with 1).
torch.set_num_threads(1)


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


# The demo configs at ResNet width 8 (CPU-tiny), with a bank of 128 x 32.
TINY_DEMO_MODEL = {
    'model.backbone.base_channels': 8,
    'model.neck.in_channels': 64, 'model.neck.hid_channels': 64,
    'model.neck.out_channels': 32, 'model.predictor.in_channels': 32,
    'model.predictor.hid_channels': 64, 'model.predictor.out_channels': 32,
    'model.memory_bank.size': 128, 'model.memory_bank.dim': 32,
}


def subset_list(out_dir, per_class: int, name: str = '', split: str = 'train') -> str:
    """A list file (in ``out_dir``) of the first ``per_class`` images of each class of the
    bundled ``data/cifar10_mini/<split>``."""
    lines = [f'{c}/{i:04d}.jpg' for c in sorted(os.listdir(osp.join(MINI, split)))
             for i in range(per_class)]
    path = osp.join(str(out_dir), name or f'{split}{per_class}.txt')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def tiny_run_options(subset: str, epochs: int = 2, batch: int = 16) -> dict:
    """``cfg_options`` of a demo config for a CPU-tiny in-process run: the width-8 model, the
    ``subset`` list, no loader workers, a cosine schedule over ``epochs``, the logger at every
    step, and the online kNN validation on the same few images (memory = query set)."""
    return {
        **TINY_DEMO_MODEL,
        'train_dataloader.batch_size': batch, 'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_dataloader.dataset.ann_file': subset,
        'knn_train_dataloader.dataset.ann_file': subset, 'val_dataloader.dataset.ann_file': subset,
        'train_cfg.max_epochs': epochs,
        'param_scheduler': [dict(type='CosineAnnealingLR', T_max=epochs, by_epoch=True,
                                 begin=0, end=epochs)],
        'default_hooks.logger.interval': 1,
    }


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
