"""Exporting the pre-trained backbone of an mmmsf checkpoint to other codebases.

* torchvision: a plain ``ResNet`` state dict (``conv1``, ``bn1``, ``layer1``..``layer4``; no
  ``fc``) -- ``torchvision.models.resnet50().load_state_dict(sd, strict=False)`` reports only
  ``fc.weight`` and ``fc.bias`` missing.
* mmdet, Faster R-CNN R50-C4 (MoCo's VOC protocol, paper Table 5): res2-res4 live in the
  detector's ``backbone`` (mmdet ``ResNet(num_stages=3)``) and res5 in the RoI head's shared
  head (mmdet ``ResLayer(stage=3)``), so ``layer4.*`` becomes ``roi_head.shared_head.layer4.*``
  and the rest ``backbone.*``. mmdet's ResNet uses torchvision's parameter names, so nothing
  else is renamed. ``layout='fpn'`` puts every stage under ``backbone.`` (R50-FPN detectors).

mmmsf's backbone must have torchvision's ImageNet stem (7x7 conv + max-pool): a small-image
stem (``stem='small'``) has no torchvision/mmdet counterpart and is refused.
"""
from collections import OrderedDict
from typing import Mapping

import torch

from .checkpoint import select_prefix


def backbone_state(state: Mapping[str, torch.Tensor],
                   prefix: str = 'backbone.') -> 'OrderedDict[str, torch.Tensor]':
    """The backbone tensors (prefix removed), checked to have the ImageNet stem."""
    out = select_prefix(state, prefix)
    conv1 = out.get('conv1.weight')
    if conv1 is None or 'layer4.0.conv1.weight' not in out:
        raise KeyError(f'the {prefix!r} tensors are not a ResNet with torchvision names '
                       '(conv1, layer1..layer4).')
    if tuple(conv1.shape[-2:]) != (7, 7):
        raise ValueError(f'conv1 is {tuple(conv1.shape[-2:])}: a small-image stem (stem=\'small\') '
                         'has no torchvision/mmdet counterpart; export a model pre-trained with '
                         "the ImageNet stem (stem='imagenet').")
    return OrderedDict((k, v.clone()) for k, v in out.items())


def to_torchvision(state: Mapping[str, torch.Tensor],
                   prefix: str = 'backbone.') -> 'OrderedDict[str, torch.Tensor]':
    """torchvision ``ResNet`` state dict (without ``fc``) of an mmmsf model state dict."""
    return backbone_state(state, prefix)


def to_mmdet(state: Mapping[str, torch.Tensor], prefix: str = 'backbone.',
             layout: str = 'c4') -> 'OrderedDict[str, torch.Tensor]':
    """Detector state dict: ``backbone.*`` (+ ``roi_head.shared_head.layer4.*`` for C4)."""
    if layout not in ('c4', 'fpn'):
        raise KeyError(f"layout={layout!r}: 'c4' (Faster R-CNN R50-C4) or 'fpn'.")
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    for k, v in backbone_state(state, prefix).items():
        if layout == 'c4' and k.startswith('layer4.'):
            out[f'roi_head.shared_head.{k}'] = v
        else:
            out[f'backbone.{k}'] = v
    return out
