"""The mean-shift loss of MSF (paper Eq. 1-2).

For the L2-normalised online prediction ``v`` and the ``k`` L2-normalised neighbours ``z_j`` of
the target embedding in the memory bank::

    loss = mean_batch( (1/k) * sum_j ||v - z_j||^2 ) = mean_batch( (1/k) * sum_j (2 - 2 v.z_j) )

which is the reference code's ``dist_q[idx].sum(1) / k``. Paper §2 notes that, for the squared
Euclidean distance, pulling ``v`` towards all neighbours has the same gradient as pulling it
towards their mean; ``mode='mean'`` computes ``||v - mean_j z_j||^2`` (differs by a constant).
"""
from typing import Optional

import torch
import torch.nn as nn

from mmmsf.registry import MODELS


@MODELS.register_module()
class MeanShiftLoss(nn.Module):
    """Mean squared distance between the prediction and its target's neighbours.

    Args:
        mode: ``'sum'`` (sum of distances / k, the paper's and reference code's form) or
            ``'mean'`` (distance to the neighbours' mean; identical gradient).
        loss_weight: multiplier of the loss.
    """

    def __init__(self, mode: str = 'sum', loss_weight: float = 1.0):
        super().__init__()
        if mode not in ('sum', 'mean'):
            raise KeyError(f"MeanShiftLoss mode={mode!r}: use 'sum' or 'mean'.")
        self.mode, self.loss_weight = mode, loss_weight

    def forward(self, pred: torch.Tensor, neighbours: torch.Tensor,
                weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``pred``: (B, D) unit vectors; ``neighbours``: (B, k, D) unit vectors;
        ``weight``: optional (B,) per-query weights (the mean is over their sum)."""
        neighbours = neighbours.to(pred.dtype)
        if self.mode == 'sum':
            per_query = (2 - 2 * torch.einsum('bd,bkd->bk', pred, neighbours)).mean(dim=1)
        else:
            per_query = (pred - neighbours.mean(dim=1)).pow(2).sum(dim=1)
        if weight is None:
            return self.loss_weight * per_query.mean()
        return self.loss_weight * (per_query * weight).sum() / weight.sum().clamp(min=1)
