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


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """A 63-bit seed for the sample at ``position`` of ``epoch``'s global order."""
    lo, hi = np.random.SeedSequence([seed % 2**32, epoch, position]).generate_state(
        2, dtype=np.uint32)
    return (int(hi) << 32 | int(lo)) & (2**63 - 1)


def aug_seed_of(index) -> Optional[int]:
    """The augmentation seed an index carries, or None for a plain ``int``."""
    return getattr(index, 'aug_seed', None)


@contextlib.contextmanager
def seeded_random(seed: Optional[int]) -> Iterator[None]:
    """Seed Python's, NumPy's and torch's (CPU) global generators from ``seed`` for the block,
    then put back the states they had, so the caller's random streams are not disturbed.
    ``None``: do nothing."""
    if seed is None:
        yield
        return
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    s = np.random.SeedSequence(seed).generate_state(3, dtype=np.uint32)
    random.seed(int(s[0]))
    np.random.seed(int(s[1]))
    torch.default_generator.manual_seed(int(s[2]))  # CPU only: CUDA streams untouched
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
