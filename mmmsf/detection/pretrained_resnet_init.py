"""Initialising a detector's ResNet parts from an mmmsf checkpoint (paper Table 5 transfer).

In Faster R-CNN R50-C4 the pre-trained ResNet is split in two: the stem and res2-res4 are
mmdet's ``ResNet(num_stages=3)`` backbone, res5 is the RoI head's shared head
(mmdet ``ResLayer(stage=3)``, module ``layer4``). Both use torchvision's parameter names, as does
mmmsf's ResNet, so the same initialiser serves both::

    backbone=dict(..., init_cfg=dict(type='mmmsf.PretrainedResNet', checkpoint=CKPT))
    roi_head=dict(shared_head=dict(..., init_cfg=dict(type='mmmsf.PretrainedResNet',
                                                      checkpoint=CKPT)))

``CKPT`` is an mmmsf training checkpoint (its online ``backbone.*`` is used) or a backbone
extracted by ``tools/extract_backbone.py`` (torchvision keys; a torchvision ResNet file works too).
Every ResNet tensor of the module (``conv1``, ``bn1``, ``layer1``..``layer4``) must come from the
checkpoint with the same shape, otherwise it is an error -- never a silent random
initialisation. Tensors of the module outside the ResNet (the extra norm after res5) keep their
default initialisation and are listed in the printed report.
"""
import os
import os.path as osp
from collections import OrderedDict
from functools import lru_cache
from typing import Dict, List, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model.weight_init import update_init_info

from mmmsf.registry import WEIGHT_INITIALIZERS
from mmmsf.utils.checkpoint import read_checkpoint

RESNET_PARTS = ('conv1.', 'bn1.', 'layer1.', 'layer2.', 'layer3.', 'layer4.')
# Checkpoint layouts that need a conversion first, with the fix to print.
FOREIGN_LAYOUTS = {
    'encoder_q.': "the authors' MSF/CMSF layout: convert it to an mmmsf checkpoint first "
                  '(tools/model_converters)',
    'roi_head.': 'a detector checkpoint: test it with tools/test_detection.py, or give the '
                 'pre-trained mmmsf checkpoint it was fine-tuned from',
}


def resnet_weights(state: Dict[str, torch.Tensor],
                   source: str = 'checkpoint') -> Tuple['OrderedDict[str, torch.Tensor]', str]:
    """The torchvision-named ResNet tensors of ``state`` and the layout they were found in.

    ``backbone.*`` keys (an mmmsf training checkpoint) win; otherwise the state dict must itself
    be a ResNet (an extracted backbone or a torchvision file; ``fc.*`` is dropped).
    """
    if any(k.startswith('backbone.') for k in state) and not any(
            k.startswith('roi_head.') for k in state):
        out = OrderedDict((k[len('backbone.'):], v) for k, v in state.items()
                          if k.startswith('backbone.'))
        layout = "mmmsf checkpoint ('backbone.*')"
    elif 'conv1.weight' in state and any(k.startswith('layer1.') for k in state):
        out = OrderedDict((k, v) for k, v in state.items() if not k.startswith('fc.'))
        layout = 'extracted ResNet backbone'
    else:
        for prefix, hint in FOREIGN_LAYOUTS.items():
            if any(k.startswith(prefix) for k in state):
                raise KeyError(f'{source} is {hint}.')
        raise KeyError(f'{source} is neither an mmmsf checkpoint (no backbone.* keys) nor an '
                       f'extracted ResNet backbone (no conv1.weight / layer1.*); it holds e.g. '
                       f'{list(state)[:4]}. Give a checkpoint written by tools/train.py or '
                       'tools/extract_backbone.py.')
    if not any(k.startswith(RESNET_PARTS) for k in out):
        raise KeyError(f'the {layout} of {source} has no ResNet tensors (conv1, layer1..4).')
    return out, layout


@lru_cache(maxsize=2)
def _cached_resnet_weights(path: str, mtime: float, size: int):
    state, meta = read_checkpoint(path)
    weights, layout = resnet_weights(state, path)
    return weights, layout, meta


def load_resnet_weights(path: str) -> Tuple['OrderedDict[str, torch.Tensor]', str, dict]:
    """ResNet tensors, layout name and meta of ``path`` (cached: the backbone and the shared
    head of one detector read the file once)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'pre-trained checkpoint {path!r} does not exist.')
    st = os.stat(path)
    return _cached_resnet_weights(osp.abspath(path), st.st_mtime, st.st_size)


def _group(keys: List[str]) -> str:
    """``layer4 (60), fc (2)``: keys counted by their first name component."""
    counts: Dict[str, int] = OrderedDict()
    for k in keys:
        counts[k.split('.')[0]] = counts.get(k.split('.')[0], 0) + 1
    return ', '.join(f'{name} ({n})' for name, n in counts.items()) or 'none'


def _shape_hint(wrong: List[Tuple[str, tuple, tuple]]) -> str:
    for key, ckpt_shape, own_shape in wrong:
        if key == 'conv1.weight' and ckpt_shape[-2:] != own_shape[-2:]:
            return (f' The checkpoint has a {ckpt_shape[-2]}x{ckpt_shape[-1]} stem conv: it was '
                    "pre-trained with stem='small', which detectors (7x7 stem + max-pool) cannot "
                    "use; pre-train with stem='imagenet'.")
    return (' The checkpoint is another ResNet (depth / width): pick the detection config whose '
            'backbone matches the pre-training config.')


def init_resnet_from_weights(module: nn.Module, weights: Dict[str, torch.Tensor],
                             source: str = 'checkpoint') -> Dict[str, List[str]]:
    """Copy ``weights`` into every ResNet tensor of ``module``; return the report.

    Raises ``KeyError`` if a ResNet tensor of the module is absent from ``weights`` (BN's
    ``num_batches_tracked`` counters excepted) and ``ValueError`` if a shape differs.
    """
    own = module.state_dict()
    targets = [k for k in own if k.startswith(RESNET_PARTS)]
    if not targets:
        raise ValueError(f'{type(module).__name__} has no ResNet tensors (conv1, bn1, '
                         'layer1..layer4) to initialise: put mmmsf.PretrainedResNet on the '
                         'backbone and the res5 shared head only.')
    missing = [k for k in targets if k not in weights and not k.endswith('num_batches_tracked')]
    wrong = [(k, tuple(weights[k].shape), tuple(own[k].shape)) for k in targets
             if k in weights and weights[k].shape != own[k].shape]
    if missing:
        raise KeyError(f'{source} lacks {len(missing)} of the {len(targets)} ResNet tensors of '
                       f'the detector\'s {type(module).__name__} ({_group(missing)}; e.g. '
                       f'{missing[:3]}): it is not a checkpoint of this backbone.')
    if wrong:
        shown = '; '.join(f'{k}: checkpoint {a} vs detector {b}' for k, a, b in wrong[:3])
        raise ValueError(f'{len(wrong)} ResNet tensors of {source} do not fit the detector\'s '
                         f'{type(module).__name__} ({shown}).' + _shape_hint(wrong))
    loaded = [k for k in targets if k in weights]
    result = module.load_state_dict(OrderedDict((k, weights[k]) for k in loaded), strict=False)
    assert not result.unexpected_keys, result.unexpected_keys
    return dict(loaded=loaded, default_init=[k for k in own if k not in loaded],
                unused=[k for k in weights if k not in own])


@WEIGHT_INITIALIZERS.register_module(name='PretrainedResNet')
class PretrainedResNetInit:
    """mmengine initialiser: load the module's ResNet tensors from an mmmsf checkpoint.

    Args:
        checkpoint: mmmsf checkpoint or extracted backbone (``tools/train_detection.py
            --pretrained`` fills it in).
    """

    def __init__(self, checkpoint: str = None) -> None:
        self.checkpoint = checkpoint
        self.wholemodule = False

    def __call__(self, module: nn.Module) -> None:
        if not self.checkpoint:
            raise ValueError(f'init_cfg of the detector\'s {type(module).__name__} names no '
                             'checkpoint: pass --pretrained CKPT to tools/train_detection.py '
                             '(or --scratch for a randomly initialised baseline).')
        weights, layout, _ = load_resnet_weights(self.checkpoint)
        report = init_resnet_from_weights(module, weights, self.checkpoint)
        default = report['default_init']
        print_log(f'{type(module).__name__}: loaded {len(report["loaded"])} ResNet tensors from '
                  f'the {layout} {self.checkpoint} (missing: none); default-initialised: '
                  f'{_group(default)}{" " + str(default[:4]) if default else ""}; unused '
                  f'checkpoint tensors: {_group(report["unused"])}', logger='current')
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=f'PretrainedResNet: {self.checkpoint}')
