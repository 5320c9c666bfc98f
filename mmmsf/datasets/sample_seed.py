"""Per-sample augmentation seeds: the views of a sample depend on (seed, epoch, position) only.

Data-loader workers normally draw augmentations from per-worker random streams that start again
from the same seed whenever the workers start (every resume; with ``persistent_workers`` once
per run, otherwise every epoch) and that depend on which worker got which batch. A resumed run
then augments differently from the uninterrupted one. Instead,
:class:`~mmmsf.datasets.ResumableSampler` hands out :class:`SeededIndex` values -- dataset
indices that carry the seed of that sample's augmentation, a function of the sampler's seed,
the epoch and the sample's position in the epoch's global order -- and
:class:`~mmmsf.datasets.ImageFolder` runs each sample's pipeline under :func:`seeded_random`.
The views are then the same for any number of workers, with or without persistent workers,
and in a run resumed at any step.
"""
import contextlib
import random
from typing import Iterator, Optional

import numpy as np
import torch
import torch.utils.data

from mmmsf.utils.rng_state import get_rng_state, set_rng_state


class SeededIndex(int):
    """A dataset index (an ``int``) carrying ``aug_seed``, the seed of its augmentation."""

    def __new__(cls, index: int, aug_seed: int):
        obj = super().__new__(cls, index)
        obj.aug_seed = int(aug_seed)
        return obj

    def __reduce__(self):  # keeps the seed when sent to a worker process
        return SeededIndex, (int(self), self.aug_seed)

    def __repr__(self) -> str:
        return f'SeededIndex({int(self)}, aug_seed={self.aug_seed})'


_MASK64 = (1 << 64) - 1


def _mix64(x: int) -> int:
    """splitmix64's finaliser: a bijective, well-mixing hash of a 64-bit integer."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """A 63-bit seed for the sample at ``position`` of ``epoch``'s global order."""
    return _mix64(_mix64(_mix64(seed & _MASK64) ^ epoch) ^ position) >> 1


def aug_seed_of(index) -> Optional[int]:
    """The augmentation seed an index carries, or None for a plain ``int``."""
    return getattr(index, 'aug_seed', None)


@contextlib.contextmanager
def seeded_random(seed: Optional[int]) -> Iterator[None]:
    """Seed Python's, NumPy's and torch's (CPU) global generators from ``seed`` for the block.
    In the main process (``num_workers=0``) the states they had are put back afterwards, so
    the trainer's random streams are not disturbed; a loader worker draws nothing else and
    skips that (NumPy's state round trip costs about as much as a small image's decoding).
    ``None``: do nothing."""
    if seed is None:
        yield
        return
    in_worker = torch.utils.data.get_worker_info() is not None
    states = None if in_worker else get_rng_state(cuda=False)
    random.seed(_mix64(seed ^ 1))
    np.random.seed(_mix64(seed ^ 2) >> 32)  # NumPy's legacy seed: 32 bits
    torch.default_generator.manual_seed(_mix64(seed ^ 3) >> 1)  # CPU only: CUDA untouched
    try:
        yield
    finally:
        if states is not None:
            set_rng_state(states)
