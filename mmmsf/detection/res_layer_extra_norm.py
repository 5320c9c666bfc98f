"""The C4 shared head of MoCo's detection protocol: res5 followed by one extra norm layer.

MoCo fine-tunes R50-C4 with detectron2's ``Res5ROIHeadsExtraNorm``: the res5 stage run on each
RoI, then a (Sync)BN over its output, because self-supervised features are not scaled like
ImageNet-supervised ones. The MSF paper (Table 5) uses "the code of MoCo with default
parameters", so our R50-C4 config does the same. The blocks are mmdet's (module ``layer4``,
torchvision names); only ``norm`` is new and is not in any checkpoint.

``base_channels`` (mmdet ``ResNet``'s argument of the same name; mmdet's ``ResLayer`` fixes it
at 64) lets the CPU smoke config use a narrow ResNet-18 whose backbone and res5 match.
"""
from typing import Optional

from mmcv.cnn import build_norm_layer
from mmdet.models.backbones import ResNet
from mmdet.models.layers import ResLayer as _ResLayer
from mmdet.models.roi_heads.shared_heads import ResLayer

from mmmsf.registry import MODELS


@MODELS.register_module()
class ResLayerExtraNorm(ResLayer):
    """mmdet's ``ResLayer`` shared head (res5) plus a norm layer (``norm_cfg``) on its output."""

    def __init__(self, depth: int, stage: int = 3, stride: int = 2, dilation: int = 1,
                 style: str = 'pytorch', norm_cfg: dict = dict(type='BN', requires_grad=True),
                 norm_eval: bool = True, with_cp: bool = False, dcn: Optional[dict] = None,
                 base_channels: int = 64, **kwargs):
        super().__init__(depth, stage=stage, stride=stride, dilation=dilation, style=style,
                         norm_cfg=norm_cfg, norm_eval=norm_eval, with_cp=with_cp, dcn=dcn,
                         **kwargs)
        block, stage_blocks = ResNet.arch_settings[depth]
        if base_channels != 64:  # rebuild res5 at the backbone's width
            self.add_module(f'layer{stage + 1}', _ResLayer(
                block, base_channels * 2**(stage - 1) * block.expansion,
                base_channels * 2**stage, stage_blocks[stage], stride=stride,
                dilation=dilation, style=style, with_cp=with_cp, norm_cfg=norm_cfg, dcn=dcn))
        self.add_module('norm', build_norm_layer(
            norm_cfg, base_channels * 2**stage * block.expansion)[1])

    def forward(self, x):
        return self.norm(super().forward(x))
