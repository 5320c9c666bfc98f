"""Normalises every view of a multi-view batch (uint8 BGR -> float RGB, mean/std)."""
from typing import List, Optional, Sequence

import torch
from mmengine.model import ImgDataPreprocessor

from mmmsf.registry import MODELS


@MODELS.register_module()
class MultiViewDataPreprocessor(ImgDataPreprocessor):
    """``inputs`` is a list of views; each view a list of (C, H, W) uint8 tensors or a batch.

    ``channels_last=True`` returns the views in channels-last memory format (faster convs on
    recent GPUs and CPUs).
    """

    def __init__(self, mean: Sequence[float] = (123.675, 116.28, 103.53),
                 std: Sequence[float] = (58.395, 57.12, 57.375), bgr_to_rgb: bool = True,
                 channels_last: bool = False, non_blocking: bool = True):
        super().__init__(mean=mean, std=std, bgr_to_rgb=bgr_to_rgb, non_blocking=non_blocking)
        self.channels_last = channels_last

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        views = data['inputs']
        if isinstance(views, torch.Tensor) or (views and isinstance(views[0], torch.Tensor)
                                               and views[0].dim() == 3):
            views = [views]  # a single-view batch
        out: List[torch.Tensor] = []
        for view in views:
            x = torch.stack(list(view)) if not isinstance(view, torch.Tensor) else view
            if self._channel_conversion:
                x = x[:, [2, 1, 0], ...]
            out.append(self.normalize(x.float()))
        return dict(inputs=out, data_samples=data.get('data_samples'))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """A float RGB view in [0, 255] -> normalised (and channels-last if asked)."""
        if self._enable_normalize:
            x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x
