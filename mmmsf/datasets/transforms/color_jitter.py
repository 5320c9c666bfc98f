"""ColorJitter with torchvision's semantics (random order of brightness/contrast/saturation/hue).

MoCo-v2's strong view: ``ColorJitter(0.4, 0.4, 0.4, 0.1)`` applied with p=0.8 (wrap it in
mmcv's ``RandomApply``). Images are HWC uint8 numpy arrays in BGR (mmcv's loading order) or RGB.
"""
import random
from typing import Optional, Tuple

import numpy as np
import torch
import torchvision.transforms.functional as TF
from mmcv.transforms import BaseTransform

from mmmsf.registry import TRANSFORMS


def _range(value: float, center: float = 1.0, bound: Optional[Tuple[float, float]] = None):
    if value == 0:
        return None
    lo, hi = center - value, center + value
    if bound is not None:
        lo, hi = max(lo, bound[0]), min(hi, bound[1])
    return lo, hi


@TRANSFORMS.register_module()
class ColorJitter(BaseTransform):
    """Randomly change brightness, contrast, saturation and hue (torchvision's ColorJitter)."""

    def __init__(self, brightness: float = 0., contrast: float = 0., saturation: float = 0.,
                 hue: float = 0., color_format: str = 'bgr'):
        if not 0 <= hue <= 0.5:
            raise ValueError(f'ColorJitter hue={hue} must be in [0, 0.5].')
        self.brightness = _range(brightness, bound=(0, float('inf')))
        self.contrast = _range(contrast, bound=(0, float('inf')))
        self.saturation = _range(saturation, bound=(0, float('inf')))
        self.hue = _range(hue, center=0.0)
        self.color_format = color_format

    def transform(self, results: dict) -> dict:
        img = results['img']
        rgb = img[..., ::-1] if self.color_format == 'bgr' else img
        t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)
        ops = [('brightness', TF.adjust_brightness), ('contrast', TF.adjust_contrast),
               ('saturation', TF.adjust_saturation), ('hue', TF.adjust_hue)]
        random.shuffle(ops)
        for name, fn in ops:
            rng = getattr(self, name)
            if rng is not None:
                t = fn(t, random.uniform(*rng))
        out = t.permute(1, 2, 0).numpy()
        results['img'] = np.ascontiguousarray(out[..., ::-1] if self.color_format == 'bgr'
                                              else out)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(brightness={self.brightness}, contrast={self.contrast}, '
                f'saturation={self.saturation}, hue={self.hue})')
