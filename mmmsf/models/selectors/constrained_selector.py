"""The common part of CMSF's constrained selectors: top-k of ``u`` inside a constrained set C.

CMSF (Tejankar et al., "Constrained Mean Shift", §3) replaces MSF's search over the whole memory
bank M by a search over a subset C of M: the query's neighbours are the top-k of its target
embedding ``u`` among the entries of C. A subclass only says what C is, as a (B, K) boolean mask
over the bank slots (:meth:`ConstrainedSelector.constraint_mask`), and which queries are
constrained at all; this class does the exact search. The mask is best given as a lazy
:class:`~mmmsf.utils.slot_mask.SlotMask`, which the chunked search builds one block of slots at
a time (nothing bank-sized per step); a dense bool tensor also works.

Rules shared by every constrained selector:

* **Unconstrained queries** (no cluster id yet, no confident pseudo-label, no label, no
  previous visit, ...) fall back to MSF: C = M, plain top-k.
* **k larger than |C|**: C's members come first, nearest first; the remaining ``k - |C|`` places
  go to the nearest bank entries *outside* C (also nearest first). This is what the authors' code
  does implicitly by adding a constant to the distances of the entries in C before one top-k; we
  do it exactly with two searches. ``extras['c_size']`` holds |C| per query (K for unconstrained
  ones), so the logs show how often it happens.
* Extras named ``ratio/<name>`` are (B, 2) per-query (numerator, denominator) terms that the
  algorithm sums and logs as ``<name>`` (e.g. the pseudo-label accuracy); a (2,) pair of sums
  also works.
* The query itself was enqueued before the search; for all selectors in this package it belongs
  to its own C, so neighbour #1 is the query itself as in MSF.

State that a selector keeps (a second bank, per-slot labels, per-image cluster ids) lives in
buffers, so it is saved in checkpoints and restored on resume. The life-cycle methods of
:class:`~mmmsf.models.selectors.BaseSelector` (``bind``, ``step_inputs``, ``after_enqueue``)
keep it in step with the bank. Per-slot state is held like the bank: this rank's slots only when
the bank is sharded (``bank.shard``, ``bank.local_slots``, ``bank.slot_fn``), registered with
:meth:`register_sharded` so checkpoints hold it whole.
"""
from typing import Dict, Sequence, Tuple, Union

import torch

from mmmsf.utils.sharded_state import ShardedState
from mmmsf.utils.slot_mask import SlotMask
from ..memories.neighbour_bank import NeighbourBank
from .base_selector import BaseSelector, SelectorOutput


class ConstrainedSelector(BaseSelector, ShardedState):
    """Base of CMSF's selectors; subclasses implement :meth:`constraint_mask`.

    Attributes:
        per_image_buffers: names of buffers with one entry per dataset image. They are allocated
            by the hooks that fill them (the dataset size is known only then); when a checkpoint
            is loaded into an unallocated buffer it takes the checkpoint's size, and a different
            size than the allocated one is an error.
    """
    per_image_buffers: Sequence[str] = ()

    # ------------------------------------------------------------------ selection
    def constraint_mask(self, query: torch.Tensor, bank: NeighbourBank,
                        **side) -> Tuple[Union[SlotMask, torch.Tensor], torch.Tensor]:
        """(mask (B, K): slot j is in C of query b, a SlotMask or bool tensor;
        constrained (B,) bool)."""
        raise NotImplementedError

    @torch.no_grad()
    def select(self, query: torch.Tensor, bank: NeighbourBank, k: int,
               **side) -> SelectorOutput:
        mask, constrained = self.constraint_mask(query, bank, **side)
        return self.topk_in_set(query, bank, k, mask, constrained)

    @staticmethod
    @torch.no_grad()
    def topk_in_set(query: torch.Tensor, bank: NeighbourBank, k: int,
                    mask: Union[SlotMask, torch.Tensor],
                    constrained: torch.Tensor) -> SelectorOutput:
        """Exact top-k of each constrained query inside its C (``mask`` row), plain top-k for the
        others; short sets are completed with the nearest entries outside C (module docstring).
        """
        mask = SlotMask.coerce(mask).or_rows(~constrained)
        c_size = bank.count(mask)
        _, idx = bank.search(query, k, mask=mask)
        short = torch.nonzero(c_size < k).flatten()
        if short.numel():
            _, fill = bank.search(query[short], k, mask=(~mask).rows(short))
            pos = torch.arange(k, device=idx.device)[None, :]
            have = c_size[short][:, None]
            from_fill = fill.gather(1, (pos - have).clamp(min=0))
            idx[short] = torch.where(pos < have, idx[short], from_fill)
        return SelectorOutput(idx, constrained.clone(), dict(c_size=c_size))

    # ------------------------------------------------------------------ per-image state
    def allocate_per_image(self, name: str, num_images: int, fill_value) -> None:
        """(Re-)allocate the per-image buffer ``name`` for ``num_images`` images."""
        old = getattr(self, name)
        if old.numel() == num_images:
            return
        if old.numel() not in (0, num_images):
            raise ValueError(f'{type(self).__name__}.{name} holds {old.numel()} images but the '
                             f'dataset has {num_images}: resume with the dataset the run started '
                             'with (or start a new run).')
        setattr(self, name, torch.full((num_images, ), fill_value, dtype=old.dtype,
                                       device=old.device))

    def _load_from_state_dict(self, state_dict: Dict, prefix: str, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs) -> None:
        for name in self.per_image_buffers:
            key = prefix + name
            if key not in state_dict:
                continue
            incoming, local = state_dict[key], getattr(self, name)
            if local.numel() == 0:
                setattr(self, name, torch.empty_like(incoming, dtype=local.dtype,
                                                     device=local.device))
            elif local.shape != incoming.shape:
                raise ValueError(
                    f'checkpoint {key} covers {incoming.numel()} images, the dataset has '
                    f'{local.numel()}: resume with the dataset the run started with.')
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)


def per_image_lookup(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` with ``-1`` where ``index`` is ``-1`` or outside the table (no sync)."""
    if table.numel() == 0:
        return torch.full(index.shape, -1, dtype=table.dtype, device=index.device)
    table = table.to(index.device)
    ok = (index >= 0) & (index < table.numel())
    vals = table[index.clamp(0, table.numel() - 1)]
    return torch.where(ok, vals, torch.full_like(vals, -1))
