"""Resume is exact in the demo's default data settings (loader workers, persistent workers):
a run killed with SIGKILL mid-epoch, or resumed from an epoch-end checkpoint, logs the same loss
as the uninterrupted run at every step, with 1 and with 2 gloo processes, for MSF and every
CMSF variant. Plus the two mechanisms it rests on, in isolation."""
import random

import numpy as np
import pytest
import torch

from tests.conftest import MINI
from tests.test_engine.test_runner.resume_scenario import (CKPT_EVERY, reference_runs,
                                                          run_scenario)


def _assert_exact(res):
    full = res['full']
    assert sorted(full['probed']) == list(range(1, 11))
    assert sorted(full['logged']) == list(range(1, 11))
    # mid-epoch: the run resumed from iteration 6 trains 7..10; epoch end: 6..10
    for key, first in (('mid', 2 * CKPT_EVERY + 1), ('end', 6)):
        got = res[key]
        assert sorted(got['probed']) == list(range(first, 11)), key
        for it, loss in got['probed'].items():
            assert loss == full['probed'][it], (key, it, loss, full['probed'][it])
        for it, loss in got['logged'].items():  # the logger's smoothed values too
            assert loss == full['logged'][it], (key, it, loss, full['logged'][it])


SINGLE, TWO = ['msf', 'km', '2q', '2q_prev', 'sup', 'semisup_10p'], ['msf', 'km']


@pytest.fixture(scope='module')
def references(tmp_path_factory):
    """The uninterrupted runs: those of every variant in one process (1 process), in one
    torchrun launch (2 gloo processes). Each test kills, resumes and compares its own."""
    runs = {}

    def get(nproc):
        if nproc not in runs:
            runs[nproc] = reference_runs(SINGLE if nproc == 1 else TWO,
                                         str(tmp_path_factory.mktemp(f'uninterrupted{nproc}')),
                                         nproc=nproc)
        return runs[nproc]
    return get


@pytest.mark.slow
@pytest.mark.parametrize('name', SINGLE)
def test_kill_and_resume_is_exact_single_process(name, tmp_path, references):
    _assert_exact(run_scenario(name, str(tmp_path), nproc=1, reference=references(1)[name]))


@pytest.mark.slow
@pytest.mark.parametrize('name', TWO)
def test_kill_and_resume_is_exact_two_gloo_processes(name, tmp_path, references):
    _assert_exact(run_scenario(name, str(tmp_path), nproc=2, reference=references(2)[name]))


def test_sampler_seeds_depend_on_seed_epoch_position_only():
    from mmmsf.datasets import ResumableSampler
    from mmmsf.datasets.sample_seed import aug_seed_of
    data = list(range(40))
    full = ResumableSampler(data, shuffle=True, seed=3)
    full.set_epoch(2)
    a = [(int(i), aug_seed_of(i)) for i in full]
    cut = ResumableSampler(data, shuffle=True, seed=3)
    cut.set_epoch(2)
    cut.skip = 13
    assert [(int(i), aug_seed_of(i)) for i in cut] == a[13:]
    other = ResumableSampler(data, shuffle=True, seed=3)
    other.set_epoch(3)
    b = [(int(i), aug_seed_of(i)) for i in other]
    assert len({s for _, s in a} | {s for _, s in b}) == 80  # new views every epoch
    plain = ResumableSampler(data, shuffle=True, seed=3, seed_augmentation=False)
    plain.set_epoch(2)
    assert [aug_seed_of(i) for i in plain] == [None] * 40
    assert [int(i) for i in plain] == [i for i, _ in a]


def test_seeded_index_views_ignore_global_rng_and_leave_it_untouched():
    import pickle
    from mmmsf.datasets import ImageFolder
    from mmmsf.datasets.sample_seed import SeededIndex
    pipe = [dict(type='LoadImageFromFile'),
            dict(type='MultiView', transforms=[[
                dict(type='RandomResizedCrop', size=16, scale=(0.2, 1.0)),
                dict(type='RandomFlip', prob=0.5, direction='horizontal'),
                dict(type='RandomApply', prob=0.8, transforms=[
                    dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4,
                         hue=0.1)])]], num_views=2),
            dict(type='PackInputs')]
    from mmengine.registry import init_default_scope
    init_default_scope('mmmsf')
    ds = ImageFolder(data_root=MINI, data_prefix='test', pipeline=pipe)
    idx = pickle.loads(pickle.dumps(SeededIndex(7, 12345)))  # as sent to a worker
    assert int(idx) == 7 and idx.aug_seed == 12345
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    before = random.random(), np.random.rand(), float(torch.rand(()))
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    v1 = ds[idx]['inputs']
    after = random.random(), np.random.rand(), float(torch.rand(()))
    assert after == before  # the caller's streams are untouched
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    v2 = ds[SeededIndex(7, 12345)]['inputs']
    assert all(torch.equal(a, b) for a, b in zip(v1, v2))  # same seed: same views
    v3 = ds[SeededIndex(7, 54321)]['inputs']
    assert not all(torch.equal(a, b) for a, b in zip(v1, v3))
    assert ds[7]['data_samples'].sample_idx == 7
