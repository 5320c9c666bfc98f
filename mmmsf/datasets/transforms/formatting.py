"""Pack (multi-view) images and per-sample keys for the model."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement

from mmmsf.registry import TRANSFORMS


def _to_chw(img: np.ndarray) -> torch.Tensor:
    if img.ndim == 2:
        img = img[..., None]
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


@TRANSFORMS.register_module()
class PackInputs(BaseTransform):
    """``inputs``: one (C, H, W) uint8 tensor, or a list of them for a multi-view sample;
    ``data_samples``: a data element with ``gt_label`` (if known) and ``sample_idx`` metainfo.
    """

    def __init__(self, meta_keys: Sequence[str] = ('sample_idx', 'img_path')):
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        img = results['img']
        inputs = [_to_chw(v) for v in img] if isinstance(img, list) else _to_chw(img)
        sample = BaseDataElement(metainfo={k: results[k] for k in self.meta_keys if k in results})
        if results.get('gt_label') is not None:
            sample.gt_label = int(results['gt_label'])
        return dict(inputs=inputs, data_samples=sample)
