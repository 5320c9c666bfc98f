"""``RecordAugSeed``: keep a sample's augmentation seed for augmentations made after loading.

:class:`~mmmsf.datasets.ImageFolder` runs each sample's pipeline under the seed that
:class:`~mmmsf.datasets.ResumableSampler` gave it. This transform draws one 63-bit number from
that seeded stream and stores it as ``results['aug_seed']``, so that augmentations made on the
batch later (:class:`~mmmsf.models.data_preprocessors.BatchViewsDataPreprocessor`) depend on the
sample (seed, epoch, position) only -- as the per-image transforms do.
"""
import random

from mmcv.transforms import BaseTransform

from mmmsf.registry import TRANSFORMS


@TRANSFORMS.register_module()
class RecordAugSeed(BaseTransform):
    """Store ``results['aug_seed']`` (list it in ``PackInputs(meta_keys=...)``)."""

    def transform(self, results: dict) -> dict:
        results['aug_seed'] = random.getrandbits(63)
        return results
