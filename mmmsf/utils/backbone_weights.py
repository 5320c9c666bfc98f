"""Loading the backbone weights of a checkpoint into a backbone, strictly, with clear errors."""
import torch.nn as nn

from .checkpoint import load_state_dict, select_prefix

__all__ = ['load_backbone_weights', 'select_prefix']


def load_backbone_weights(backbone: nn.Module, path: str, prefix: str = 'backbone.') -> None:
    """Load ``path``'s backbone into ``backbone``; any missing, extra or mis-shaped weight is an
    error naming it (never a silent partial initialisation)."""
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
