"""Exact resume of every CMSF variant with 2 gloo processes (``tools/train.py --launcher
pytorch`` under torchrun, the demo's loader settings): a run stopped on every rank mid-epoch 1
and resumed with ``--resume`` ends -- after the rest of epoch 1 and all of epoch 2, with the
k-means, pseudo-labeller and (for some) the online kNN validation of the demo configs -- in
exactly the state of the uninterrupted run on EVERY rank: weights, EMA target, memory bank(s),
embedding cache, selectors' tables, optimizer state and random streams. All 15 runs share one
torchrun launch (test_exact_resume.py kills with SIGKILL and compares rank 0's losses)."""
import json
import os.path as osp

import pytest
import torch

from tests.test_engine.test_runner.resume_scenario import interrupted_runs

VARIANTS = ['2q', '2q_prev', 'km', 'sup', 'semisup_10p']
# The online kNN validation gives every process rank 0's BatchNorm statistics at each epoch
# end; three variants train without it, so nothing but the checkpoints aligns the processes.
NO_VALIDATION = ['2q', 'sup', 'semisup_10p']
# 40 images, 4 per process and step: 5 steps an epoch, 2 epochs; checkpoints every 2 steps;
# stopped after step 3, so the resume starts from iter_2.pth, two steps into epoch 1 (the
# semi-supervised pseudo-labeller was trained at step 2, k-means runs when epoch 2 begins).
SIZES = dict(per_class=4, batch=8, epochs=2, ckpt_every=2, bank=32)
STOP_AT, STEPS = 3, 10


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    return interrupted_runs(VARIANTS, str(tmp_path_factory.mktemp('every_rank')), STOP_AT,
                            nproc=2, extra={n: ['--no-validate'] for n in NO_VALIDATION},
                            **SIZES)


def _steps(work_dir: str, rank: int):
    with open(osp.join(work_dir, f'losses_rank{rank}.jsonl')) as f:
        return [json.loads(line)[0] for line in f]


def _differences(a, b, path=''):
    """The paths at which the nested states ``a`` and ``b`` differ (tensors bit for bit)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        same = (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
                and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b))
        return [] if same else [path]
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f'{path}: keys {sorted(set(a) ^ set(b), key=str)}']
        return [d for k in a for d in _differences(a[k], b[k], f'{path}.{k}')]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f'{path}: length {len(a)} vs {len(b)}']
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f'{path}[{i}]')]
    if hasattr(a, 'shape') and hasattr(b, 'shape'):  # numpy arrays
        return [] if a.shape == b.shape and (a == b).all() else [path]
    return [] if a == b else [f'{path}: {a!r} vs {b!r}']


@pytest.mark.slow
@pytest.mark.parametrize('name', VARIANTS)
def test_every_rank_ends_in_the_uninterrupted_state(name, runs):
    full, cut = runs[name]['full'], runs[name]['cut']
    for rank in (0, 1):
        # the uninterrupted run trained steps 1..10; the stopped one 1..3, then the resumed
        # one replayed step 3 (after iter_2.pth) and trained on to the end
        assert _steps(full, rank) == list(range(1, STEPS + 1))
        assert _steps(cut, rank) == [1, 2, 3] + list(range(3, STEPS + 1))
        a = torch.load(osp.join(full, f'final_rank{rank}.pt'), weights_only=False)
        b = torch.load(osp.join(cut, f'final_rank{rank}.pt'), weights_only=False)
        model = a['model']
        # what is compared: the online and EMA target networks, the bank and the method's state
        assert any(k.startswith('target_backbone.') for k in model)
        assert 'memory_bank.bank' in model
        if name != 'sup' and name != '2q':
            assert any(k.startswith('embedding_cache.') for k in model), sorted(model)
        assert a['optim']['state'], 'no optimizer state recorded'
        diff = _differences(a, b)
        assert not diff, f'{name}, rank {rank}: the resumed run ends elsewhere in {diff[:8]}'
