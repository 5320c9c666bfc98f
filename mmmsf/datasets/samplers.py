"""A sampler that resumes in the middle of an epoch and seeds each sample's augmentation."""
from typing import Iterator

from mmengine.dataset import DefaultSampler

from mmmsf.registry import DATA_SAMPLERS
from .sample_seed import SeededIndex, sample_seed


@DATA_SAMPLERS.register_module()
class ResumableSampler(DefaultSampler):
    """:class:`mmengine.dataset.DefaultSampler` (same order for the same seed and epoch) whose
    next epoch can start after its first ``skip`` indices (set by the resumable train loop).
    ``len`` stays the full epoch's, so hooks that count batches (logging, end of epoch) see the
    same numbers as an uninterrupted run.

    Each index is a :class:`~mmmsf.datasets.sample_seed.SeededIndex` carrying the seed of that
    sample's augmentation: a function of the sampler's seed, the epoch and the sample's position
    in the epoch's global (all-rank) order, so neither workers nor a resume change the views.

    Args:
        seed_augmentation: hand out seeded indices (default True); False gives plain ints and
            leaves augmentation to the workers' own random streams (not reproduced on resume).
    """

    def __init__(self, *args, seed_augmentation: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.skip = 0
        self.seed_augmentation = seed_augmentation

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        skip, self.skip = self.skip, 0
        return self._seeded(indices, skip) if self.seed_augmentation else iter(indices[skip:])

    def _seeded(self, indices, skip: int) -> Iterator[int]:
        # DefaultSampler gives rank r the global positions r, r + world, r + 2 world, ...
        seed, epoch, rank, world = self.seed, self.epoch, self.rank, self.world_size
        for n in range(skip, len(indices)):
            yield SeededIndex(indices[n], sample_seed(seed, epoch, rank + n * world))
