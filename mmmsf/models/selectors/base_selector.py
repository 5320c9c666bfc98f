"""The neighbour-selector interface: MSF's top-k and CMSF's constrained searches.

A selector receives the step's L2-normalised target embeddings ``query`` (B, D) -- already
enqueued, so each query is in the bank -- the memory bank, ``k`` and the side information it
declares in ``requires`` (e.g. ``'labels'``, ``'sample_idx'``, ``'extra_view_target'``), and
returns the ``k`` bank indices of each query's neighbours within its constrained set C, plus a mask of
the queries that were actually constrained (the others fell back to the plain top-k).

On a sharded memory bank (``memory_bank.sharded=True`` on several ranks) every rank runs the
selection on the *all-gathered* queries and side information (per-query tensors, also those in
dicts such as the outputs of a selector's ``step_inputs``), so each search is the same
collective on every rank; each rank then keeps the rows of its own queries. Selector code is the
same for both banks as long as it reads per-slot data through the bank (``bank.slot_fn``,
``bank.count``, ``bank.search``/``bank.search_keys``); per-query extras ((B, ...) tensors)
are cut to this rank's rows like the indices.

A selector's life cycle, called by the algorithm that owns it (CMSF for its
``constrained_selector``), no-ops here: :meth:`BaseSelector.bind` (allocate state shaped like
the bank, once at build time), :meth:`BaseSelector.step_inputs` (side information derived from
the step's queries, once per step before the enqueue, passed back to the other calls as
keywords) and :meth:`BaseSelector.after_enqueue` (each step right after the step's targets were
written to the bank, with the slots they went to). The bank's interface is
:class:`~mmmsf.models.memories.NeighbourBank`.

To add a selector: write one file with a registered subclass, name it in a config's
``model.selector`` (or CMSF's ``model.constrained_selector``); nothing else changes.
"""
from dataclasses import dataclass, field
from typing import Dict, Tuple

import torch
import torch.nn as nn
from mmengine.dist import get_rank, get_world_size

from mmmsf.utils.dist_utils import all_gather_rows
from ..memories.neighbour_bank import NeighbourBank


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

    # ------------------------------------------------------------------ life cycle
    def bind(self, bank: NeighbourBank) -> None:
        """Allocate state shaped like ``bank`` (called once by the algorithm at build time)."""

    def step_inputs(self, query: torch.Tensor, **side) -> Dict[str, object]:
        """Side information this selector derives from the step's queries, once per step."""
        return {}

    @torch.no_grad()
    def after_enqueue(self, bank: NeighbourBank, slots: torch.Tensor, query: torch.Tensor,
                      **side) -> None:
        """Called after this step's (all-gathered) targets went to ``slots`` of ``bank``."""

    # ------------------------------------------------------------------ selection
    def forward(self, query: torch.Tensor, bank: NeighbourBank, k: int,
                **side) -> SelectorOutput:
        missing = [name for name in self.requires if side.get(name) is None]
        if missing:
            raise ValueError(f'{type(self).__name__} needs {missing}; the dataset/pipeline must '
                             'provide them (e.g. gt_label for supervised selectors).')
        if bank.is_split:
            return self._select_all_ranks(query, bank, k, side)
        return self.select(query, bank, k, **side)

    def _select_all_ranks(self, query: torch.Tensor, bank: NeighbourBank, k: int,
                          side: Dict) -> SelectorOutput:
        """Select for the all-gathered queries (the same on every rank); keep this rank's."""
        b, world = query.shape[0], get_world_size()

        def gather(t):
            # per-query tensors, also inside the dicts of per-step side inputs (e.g. a
            # selector's ``step_inputs``, computed once on this rank's queries)
            if isinstance(t, dict):
                return {name: gather(v) for name, v in t.items()}
            if isinstance(t, torch.Tensor) and t.dim() >= 1 and t.shape[0] == b:
                return all_gather_rows(t)
            return t

        side_all = {name: gather(t) for name, t in side.items()}
        out = self.select(all_gather_rows(query), bank, k, **side_all)
        mine = slice(get_rank() * b, (get_rank() + 1) * b)
        extras = {name: v[mine] if v.dim() >= 1 and v.shape[0] == world * b else v
                  for name, v in out.extras.items()}
        return SelectorOutput(out.indices[mine], out.constrained[mine], extras)

    def select(self, query: torch.Tensor, bank: NeighbourBank, k: int,
               **side) -> SelectorOutput:
        raise NotImplementedError
