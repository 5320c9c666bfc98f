"""Gaussian blur with sigma drawn uniformly from [sigma_min, sigma_max] (MoCo-v2 / SimCLR)."""
import random

import cv2
from mmcv.transforms import BaseTransform

from mmmsf.registry import TRANSFORMS


@TRANSFORMS.register_module()
class GaussianBlur(BaseTransform):
    """Blur with a random sigma in [0.1, 2.0] (reference strong view, applied with p=0.5)."""

    def __init__(self, sigma_min: float = 0.1, sigma_max: float = 2.0, prob: float = 0.5):
        if not 0 < sigma_min <= sigma_max:
            raise ValueError(f'GaussianBlur needs 0 < sigma_min <= sigma_max, '
                             f'got {sigma_min}, {sigma_max}.')
        self.sigma_min, self.sigma_max, self.prob = sigma_min, sigma_max, prob

    def transform(self, results: dict) -> dict:
        if random.random() < self.prob:
            sigma = random.uniform(self.sigma_min, self.sigma_max)
            results['img'] = cv2.GaussianBlur(results['img'], (0, 0), sigmaX=sigma, sigmaY=sigma)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(sigma=({self.sigma_min}, {self.sigma_max}), p={self.prob})'
