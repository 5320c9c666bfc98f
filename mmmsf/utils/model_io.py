"""Reading mmmsf checkpoints safely and extracting the backbone."""
from collections import OrderedDict
from typing import Dict

import torch

from .checkpoint import allow_mmengine_checkpoints


def load_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """The model state dict of a checkpoint (mmengine's ``state_dict`` entry or a bare dict),
    read with torch's safe loading."""
    allow_mmengine_checkpoints()
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f'{path} holds no state dict.')
    return OrderedDict((k[len('module.'):] if k.startswith('module.') else k, v)
                       for k, v in state.items())


def extract_backbone(src: str, dst: str, prefix: str = 'backbone.') -> int:
    """Save the tensors under ``prefix`` (prefix removed) of ``src`` to ``dst``; returns count."""
    state = load_state_dict(src)
    out = OrderedDict((k[len(prefix):], v) for k, v in state.items() if k.startswith(prefix))
    if not out:
        raise KeyError(f'{src} has no keys starting with {prefix!r}: is it an mmmsf checkpoint? '
                       'Authors\' checkpoints need tools/model_converters first.')
    torch.save(dict(state_dict=out, meta=dict(source=src)), dst)
    return len(out)
