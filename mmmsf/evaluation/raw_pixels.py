"""The raw-pixel kNN baseline: the same images, flattened and normalised, the same kNN.

Each test-pipeline image goes through the model's data preprocessor (BGR->RGB, per-channel
mean/std of the pre-training config), is flattened to C*H*W values and L2-normalised, exactly
as the backbone features are before the kNN search, so the two differ only in the features.
"""
from typing import Optional, Tuple

import torch
from torch import nn

from .feature_extraction import extract_features


class RawPixels(nn.Module):
    """A 'backbone' whose features are the normalised pixels themselves."""

    def __init__(self, data_preprocessor: nn.Module) -> None:
        super().__init__()
        self.data_preprocessor = data_preprocessor

    def extract_feat(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs.flatten(1)


def raw_pixel_features(data_preprocessor: nn.Module, dataloader,
                       device: Optional[torch.device] = None
                       ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Unit-norm flattened pixels (N, C*H*W) and labels (N, ) of a dataset, in dataset order.

    All images must have one size (the test pipeline's): a flattened image has no meaning
    across sizes.
    """
    return extract_features(RawPixels(data_preprocessor), dataloader, device)
