"""Loading the backbone weights of a checkpoint into a backbone, strictly, with clear errors."""
import argparse
from collections import OrderedDict
from typing import Dict

import torch
import torch.nn as nn

from .model_io import load_state_dict

# Prefixes of checkpoints mmmsf cannot load as they are (they need tools/model_converters).
FOREIGN_PREFIXES = {
    'encoder_q.module.': "the authors' MSF/CMSF layout: convert it with "
                         'tools/model_converters/authors_to_mmmsf.py',
    'encoder_q.': "an authors'-style checkpoint: convert it with "
                  'tools/model_converters/authors_to_mmmsf.py',
}


def select_prefix(state: Dict[str, torch.Tensor], prefix: str,
                  source: str = 'checkpoint') -> 'OrderedDict[str, torch.Tensor]':
    """The tensors under ``prefix`` with the prefix removed; ``''`` keeps every key except a
    classifier ``fc.*`` (a torchvision state dict)."""
    if prefix:
        out = OrderedDict((k[len(prefix):], v) for k, v in state.items() if k.startswith(prefix))
    else:
        out = OrderedDict((k, v) for k, v in state.items() if not k.startswith('fc.'))
    if not out:
        for p, hint in FOREIGN_PREFIXES.items():
            if any(k.startswith(p) for k in state):
                raise KeyError(f'{source} has no {prefix!r} keys; it is {hint}.')
        some = ', '.join(list(state)[:4])
        raise KeyError(f'{source} has no keys starting with {prefix!r} (it has e.g. {some}): '
                       "set the backbone prefix ('backbone.' for mmmsf checkpoints, '' for a "
                       'torchvision/extracted backbone).')
    return out


def load_backbone_weights(backbone: nn.Module, path: str, prefix: str = 'backbone.') -> None:
    """Load ``path``'s backbone into ``backbone``; any missing, extra or mis-shaped weight is an
    error naming it (never a silent partial initialisation)."""
    # argparse.Namespace: the 'opt' entry of the authors' checkpoints, so that they are
    # recognised (and sent to the converter) rather than failing to unpickle
    with torch.serialization.safe_globals([argparse.Namespace]):
        state = select_prefix(load_state_dict(path), prefix, source=path)
    own = backbone.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f'{k} {tuple(state[k].shape)} vs {tuple(v.shape)}' for k, v in own.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f'{len(missing)} missing (e.g. {missing[:3]})')
        if unexpected:
            parts.append(f'{len(unexpected)} unexpected (e.g. {unexpected[:3]})')
        if wrong:
            parts.append(f'{len(wrong)} of another shape (e.g. {wrong[:2]})')
        raise KeyError(f'backbone weights of {path} (prefix {prefix!r}) do not fit the configured '
                       f'backbone: {"; ".join(parts)}. Pick the config of the pre-training run '
                       '(depth, width, stem) or the right prefix.')
    backbone.load_state_dict(state, strict=True)
