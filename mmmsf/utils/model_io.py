"""Extracting the backbone of an mmmsf checkpoint (reading: :mod:`mmmsf.utils.checkpoint`)."""
from collections import OrderedDict

import torch

from .checkpoint import load_state_dict

__all__ = ['extract_backbone', 'load_state_dict']


def extract_backbone(src: str, dst: str, prefix: str = 'backbone.') -> int:
    """Save the tensors under ``prefix`` (prefix removed) of ``src`` to ``dst``; returns count."""
    state = load_state_dict(src)
    out = OrderedDict((k[len(prefix):], v) for k, v in state.items() if k.startswith(prefix))
    if not out:
        raise KeyError(f'{src} has no keys starting with {prefix!r}: is it an mmmsf checkpoint? '
                       'Authors\' checkpoints need tools/model_converters first.')
    torch.save(dict(state_dict=out, meta=dict(source=src)), dst)
    return len(out)
