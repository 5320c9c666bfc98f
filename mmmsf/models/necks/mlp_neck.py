"""Projection / prediction MLP of MSF: ``Linear -> BN1d -> ReLU -> Linear``.

Reference code: projection ``Linear(2048,4096)-BN-ReLU-Linear(4096,512)`` on the pooled
backbone feature; the online predictor has the same shape ``512 -> 4096 -> 512``. The layers live
in ``self.mlp`` (indices 0, 1, 3), mirroring the authors' ``fc.{0,1,3}`` keys.
"""
import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmmsf.registry import MODELS


@MODELS.register_module()
class MLPNeck(BaseModule):
    """Two-layer MLP with BN (paper §3, "projection" and "prediction" heads).

    ``with_bn=False`` drops the BN (a BN-free head, e.g. for exact multi-process checks).
    ``out_bn=True`` appends a BN without affine parameters to the output (``self.mlp[4]``), as
    SimSiam's projection: every embedding dimension is centred and scaled over the batch before
    the L2 normalisation, so no shared mean direction dominates the cosine similarities.
    """

    def __init__(self, in_channels: int, hid_channels: int, out_channels: int,
                 with_bn: bool = True, out_bn: bool = False, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.mlp = nn.Sequential(
            nn.Linear(in_channels, hid_channels),
            nn.BatchNorm1d(hid_channels) if with_bn else nn.Identity(),
            nn.ReLU(inplace=True), nn.Linear(hid_channels, out_channels))
        if out_bn:
            self.mlp.append(nn.BatchNorm1d(out_channels, affine=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:  # a feature map: global average pool first
            x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.mlp(x)
