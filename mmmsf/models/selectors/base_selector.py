"""The neighbour-selector interface: MSF's top-k and CMSF's constrained searches.

A selector receives the step's L2-normalised target embeddings ``query`` (B, D) -- already
enqueued, so each query is in the bank -- the memory bank, ``k`` and the side information it
declares in ``requires`` (e.g. ``'labels'``, ``'sample_idx'``, ``'extra_view_target'``), and
returns the ``k`` bank indices of each query's neighbours within its constrained set C, plus a mask of
the queries that were actually constrained (the others fell back to the plain top-k).

To add a selector: write one file with a registered subclass, name it in a config's
``model.selector`` (or CMSF's ``model.constrained_selector``); nothing else changes.
"""
from dataclasses import dataclass, field
from typing import Dict, Tuple

import torch
import torch.nn as nn


@dataclass
class SelectorOutput:
    """``indices`` (B, k) long bank slots, nearest first; ``constrained`` (B,) bool."""
    indices: torch.Tensor
    constrained: torch.Tensor
    extras: Dict[str, torch.Tensor] = field(default_factory=dict)


class BaseSelector(nn.Module):
    """Base class of neighbour selectors.

    Attributes:
        requires: names of the side-information tensors the selector reads; the algorithm
            passes them as keyword arguments (each (B, ...) for the local queries, or state
            owned by the selector/hooks).
    """
    requires: Tuple[str, ...] = ()

    def forward(self, query: torch.Tensor, bank, k: int, **side) -> SelectorOutput:
        missing = [name for name in self.requires if side.get(name) is None]
        if missing:
            raise ValueError(f'{type(self).__name__} needs {missing}; the dataset/pipeline must '
                             'provide them (e.g. gt_label for supervised selectors).')
        return self.select(query, bank, k, **side)

    def select(self, query: torch.Tensor, bank, k: int, **side) -> SelectorOutput:
        raise NotImplementedError
