"""A sampler that can resume in the middle of an epoch without loading the skipped images."""
from typing import Iterator

from mmengine.dataset import DefaultSampler

from mmmsf.registry import DATA_SAMPLERS


@DATA_SAMPLERS.register_module()
class ResumableSampler(DefaultSampler):
    """:class:`mmengine.dataset.DefaultSampler` (same order for the same seed and epoch) whose
    next epoch can start after its first ``skip`` indices (set by the resumable train loop). ``len`` stays the full epoch's, so hooks
    that count batches (logging, end of epoch) see the same numbers as an uninterrupted run."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.skip = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        skip, self.skip = self.skip, 0
        return iter(indices[skip:])
