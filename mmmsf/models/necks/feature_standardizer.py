"""Feature standardisation of the linear probe (MSF paper §3.2, "Evaluation on full ImageNet").

"The features from the backbone are normalized to have unit l2 norm and then scaled and shifted
to have zero mean and unit variance for each dimension." As in the reference evaluation code
(CompRess ``eval_linear.py``), the per-dimension mean and the *unbiased* variance are computed
once, over the L2-normalised features of the whole training set seen through the validation
transform (Resize 256 / CenterCrop 224), and kept fixed:

    y = (x / ||x||_2 - mean) / sqrt(var + eps),   eps = 1e-5.
"""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmmsf.registry import MODELS


@MODELS.register_module()
class FeatureStandardizer(nn.Module):
    """L2-normalise, then standardise every dimension with fixed training-set statistics.

    The statistics are buffers (saved in checkpoints). Until :meth:`set_statistics` is called
    the module refuses to run, so a probe can never train on unstandardised features by mistake.

    Args:
        dim: feature dimension (2048 for ResNet-50).
        eps: added to the variance (1e-5, reference).
        l2_normalize: L2-normalise first (reference: True).
        standardize: subtract the mean and divide by the std (reference: True); with False
            the module only L2-normalises and needs no statistics.
    """

    def __init__(self, dim: int, eps: float = 1e-5, l2_normalize: bool = True,
                 standardize: bool = True):
        super().__init__()
        if dim <= 0:
            raise ValueError(f'FeatureStandardizer dim={dim} must be positive.')
        self.dim, self.eps = dim, eps
        self.l2_normalize, self.standardize = l2_normalize, standardize
        self.register_buffer('mean', torch.zeros(dim))
        self.register_buffer('var', torch.ones(dim))
        self.register_buffer('num_samples', torch.zeros((), dtype=torch.long))

    @property
    def ready(self) -> bool:
        """Whether the statistics are set (always True when ``standardize=False``)."""
        return not self.standardize or int(self.num_samples) > 0

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """The L2 step alone (what the statistics are computed on)."""
        return F.normalize(x.float(), dim=1) if self.l2_normalize else x.float()

    @torch.no_grad()
    def set_statistics(self, mean: torch.Tensor, var: torch.Tensor, num_samples: int) -> None:
        """Fix the per-dimension mean and variance (of L2-normalised training features)."""
        if mean.shape != (self.dim, ) or var.shape != (self.dim, ):
            raise ValueError(f'statistics of shape {tuple(mean.shape)}/{tuple(var.shape)} do not '
                             f'match the feature dimension {self.dim}: they were computed with '
                             'another backbone; delete the cached statistics file.')
        if num_samples < 2:
            raise ValueError(f'the variance needs at least 2 training images, got {num_samples}.')
        self.mean.copy_(mean.to(self.mean))
        self.var.copy_(var.to(self.var))
        self.num_samples.fill_(int(num_samples))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)
        if not self.standardize:
            return x
        if not self.ready:
            raise RuntimeError('FeatureStandardizer has no statistics: run the probe through '
                               'FeatureStatisticsHook (tools/linear_eval.py does) or call '
                               'set_statistics() first.')
        return (x - self.mean) * torch.rsqrt(self.var + self.eps)


def feature_statistics(sum_x: torch.Tensor, sum_xx: torch.Tensor,
                       n: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased variance (``torch.var_mean``'s default) from running sums (float64)."""
    if n < 2:
        raise ValueError(f'the variance needs at least 2 samples, got {n}.')
    sum_x, sum_xx = sum_x.double(), sum_xx.double()
    mean = sum_x / n
    var = ((sum_xx - n * mean * mean) / (n - 1)).clamp_min(0)
    return mean, var
