"""RandomResizedCrop (Inception-style crop, torchvision's sampling), on HWC numpy images."""
import math
import random
from typing import Sequence, Tuple, Union

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform

from mmmsf.registry import TRANSFORMS


@TRANSFORMS.register_module()
class RandomResizedCrop(BaseTransform):
    """Crop a random area fraction in ``scale`` with aspect ratio in ``ratio``, resize to ``size``.

    The weak and strong views of MSF both use ``scale=(0.2, 1.0)`` (reference code).
    """

    def __init__(self, size: Union[int, Sequence[int]], scale: Tuple[float, float] = (0.08, 1.0),
                 ratio: Tuple[float, float] = (3 / 4, 4 / 3), interpolation: str = 'bilinear',
                 max_attempts: int = 10):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if not (0 < scale[0] <= scale[1] <= 1):
            raise ValueError(f'RandomResizedCrop scale={scale} must satisfy 0 < lo <= hi <= 1.')
        self.scale, self.ratio = scale, ratio
        self.interpolation, self.max_attempts = interpolation, max_attempts

    def get_params(self, h: int, w: int) -> Tuple[int, int, int, int]:
        area = h * w
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(self.max_attempts):
            target_area = area * random.uniform(*self.scale)
            aspect = math.exp(random.uniform(*log_ratio))
            cw = int(round(math.sqrt(target_area * aspect)))
            ch = int(round(math.sqrt(target_area / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                return random.randint(0, h - ch), random.randint(0, w - cw), ch, cw
        in_ratio = w / h  # fallback: central crop
        if in_ratio < min(self.ratio):
            cw, ch = w, int(round(w / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            ch, cw = h, int(round(h * max(self.ratio)))
        else:
            cw, ch = w, h
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def transform(self, results: dict) -> dict:
        img = results['img']
        top, left, ch, cw = self.get_params(*img.shape[:2])
        img = img[top:top + ch, left:left + cw]
        results['img'] = mmcv.imresize(img, (self.size[1], self.size[0]),
                                       interpolation=self.interpolation)
        results['img_shape'] = results['img'].shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(size={self.size}, scale={self.scale}, ratio={self.ratio})'
