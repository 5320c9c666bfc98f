"""CMSF's constrained set C as a lazy (B, K) mask over the memory-bank slots.

A constrained search (CMSF §3: top-k of ``u`` inside C) needs, for every query b and bank slot j,
"is j in C(b)?". Materialising that as a dense (B, K) boolean tensor costs B x K bytes per step
(1M slots, batch 256: 0.25 GB, twice with its negation), which is exactly the per-step
bank-sized allocation the chunked search avoids. A :class:`SlotMask` instead produces the mask
one block of slots at a time, when the chunked search reaches that block, so a constrained step
holds at most one ``B x chunk_size`` block of it.

The constructors cover CMSF's constraints: :meth:`SlotMask.same_key` (KM: same cluster,
supervised: same label, semi-supervised: same pseudo-label) and :meth:`SlotMask.index_sets` (2Q:
the slots of the top-k' neighbours in M'). A dense tensor still works (:meth:`SlotMask.dense`),
so a new selector may return whichever is simpler.
"""
from typing import Callable, Tuple, Union

import torch

BlockFn = Callable[[int, int], torch.Tensor]


class SlotMask:
    """(B, K) boolean mask over bank slots, built block by block: ``block(start, stop)`` gives
    columns ``start:stop`` as a (B, stop - start) bool tensor; ``True`` = slot is in C."""

    def __init__(self, shape: Tuple[int, int], block_fn: BlockFn):
        self.shape = (int(shape[0]), int(shape[1]))
        self._block = block_fn

    def block(self, start: int, stop: int) -> torch.Tensor:
        return self._block(start, min(stop, self.shape[1]))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def coerce(cls, mask: Union['SlotMask', torch.Tensor]) -> 'SlotMask':
        return mask if isinstance(mask, SlotMask) else cls.dense(mask)

    @classmethod
    def dense(cls, mask: torch.Tensor) -> 'SlotMask':
        """Wrap a materialised (B, K) bool tensor."""
        if mask.dim() != 2:
            raise ValueError(f'a slot mask must be (B, K), got shape {tuple(mask.shape)}.')
        mask = mask.bool()
        return cls(tuple(mask.shape), lambda s, e: mask[:, s:e])

    @classmethod
    def full(cls, num_queries: int, num_slots: int, value: bool,
             device: Union[str, torch.device] = 'cpu') -> 'SlotMask':
        """Every slot in (``True``) or out of (``False``) every row's C."""
        return cls((num_queries, num_slots), lambda s, e: torch.full(
            (num_queries, e - s), value, dtype=torch.bool, device=device))

    @classmethod
    def same_key(cls, query_keys: torch.Tensor, slot_keys: Union[torch.Tensor, BlockFn],
                 num_slots: int) -> 'SlotMask':
        """C(b) = {j : key(j) == key(b)}; slots with key ``-1`` are in no C.

        ``slot_keys`` is a (K,) tensor or a function ``(start, stop) -> keys of those slots``
        (so a per-slot lookup, e.g. the current cluster of each slot's image, is also done one
        block at a time).
        """
        fn = slot_keys if callable(slot_keys) else (lambda s, e: slot_keys[s:e])
        q = query_keys[:, None]

        def block(s: int, e: int) -> torch.Tensor:
            keys = fn(s, e).to(q.device)[None, :]
            return (keys == q) & (keys >= 0)

        return cls((query_keys.shape[0], num_slots), block)

    @classmethod
    def index_sets(cls, index: torch.Tensor, member: torch.Tensor,
                   num_slots: int) -> 'SlotMask':
        """C(b) = {index[b, i] : member[b, i]} for a (B, m) slot index and (B, m) bool."""
        b = index.shape[0]

        def block(s: int, e: int) -> torch.Tensor:
            n = e - s
            pos = index - s
            pos = torch.where(member & (pos >= 0) & (pos < n), pos, torch.full_like(pos, n))
            out = torch.zeros(b, n + 1, dtype=torch.bool, device=index.device)
            out.scatter_(1, pos, True)
            return out[:, :n]

        return cls((b, num_slots), block)

    # ------------------------------------------------------------------ combinators
    def __invert__(self) -> 'SlotMask':
        return SlotMask(self.shape, lambda s, e: ~self.block(s, e))

    def or_rows(self, rows: torch.Tensor) -> 'SlotMask':
        """Rows where ``rows`` (B,) is ``True`` become all-``True`` (unconstrained queries)."""
        full = rows.bool()[:, None]
        return SlotMask(self.shape, lambda s, e: self.block(s, e) | full)

    def rows(self, index: torch.Tensor) -> 'SlotMask':
        """The sub-mask of the queries ``index`` (1-D long tensor)."""
        return SlotMask((index.numel(), self.shape[1]), lambda s, e: self.block(s, e)[index])

    # ------------------------------------------------------------------ reductions
    def count(self, chunk_size: int) -> torch.Tensor:
        """|C(b)| for every row, (B,) int32, one block of ``chunk_size`` slots at a time."""
        total = None
        for s in range(0, self.shape[1], chunk_size):
            c = self.block(s, s + chunk_size).sum(dim=1, dtype=torch.int32)  # no int64 block
            total = c if total is None else total + c
        return total

    def to_dense(self) -> torch.Tensor:
        """The whole (B, K) mask (for tests and small banks)."""
        return self.block(0, self.shape[1])
