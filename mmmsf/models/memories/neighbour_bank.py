"""The interface of a memory bank as selectors and algorithms use it, declared once.

:class:`~mmmsf.models.memories.NNMemoryBank` implements it; the ``bank`` parameters of the
selectors (:class:`~mmmsf.models.selectors.BaseSelector` and its subclasses) and of the
algorithms' steps are typed with it. A selector that keeps per-slot state (a second bank, slot
labels) holds it like the bank: the global slots ``shard = [start, stop)`` on this rank
(``local_size`` rows), written through :meth:`NeighbourBank.local_slots`, read in searches
through :meth:`NeighbourBank.slot_fn`, registered with
:meth:`~mmmsf.utils.sharded_state.ShardedState.register_sharded` so checkpoints hold it whole.
"""
from typing import Callable, Optional, Protocol, Tuple, Union

import torch

from mmmsf.utils.slot_mask import SlotMask

#: ``(start, stop) -> rows`` of a per-slot table, addressed by global slot.
SlotFn = Callable[[int, int], torch.Tensor]
Mask = Union[torch.Tensor, SlotMask]


class NeighbourBank(Protocol):
    """A FIFO bank of ``size`` x ``dim`` unit vectors, possibly split across ranks.

    Attributes:
        size: K, the number of slots (all ranks together).
        dim: embedding dimension D.
        chunk_size: bank rows per distance block of a search.
        shard: the global slots ``[start, stop)`` this rank holds (all of them unless split).
        local_size: ``stop - start``.
        sharded: the configured request to split the slots across the ranks.
        is_split: the slots live on several ranks (sharded on more than one rank): searches,
            counts and row look-ups are collectives in which every rank passes the same rows.
        bank, labels, sample_idx: this rank's rows of the embeddings, their labels and their
            dataset indices (``-1`` = unknown).
    """

    size: int
    dim: int
    chunk_size: int
    shard: Tuple[int, int]
    local_size: int
    sharded: bool
    bank: torch.Tensor
    labels: torch.Tensor
    sample_idx: torch.Tensor

    @property
    def is_split(self) -> bool:
        ...

    def search(self, query: torch.Tensor, k: int,
               mask: Optional[Mask] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Exact top-k (similarity, global slot) of unit ``query`` (B, D), inside ``mask``."""
        ...

    def search_keys(self, query: torch.Tensor, keys: torch.Tensor, k: int,
                    mask: Optional[Mask] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Exact top-k in another per-slot table ``keys`` held like the bank."""
        ...

    def count(self, mask: Mask) -> torch.Tensor:
        """|C(b)| of a (B, K) global-slot mask, (B,)."""
        ...

    def slot_fn(self, table: torch.Tensor) -> SlotFn:
        """``(start, stop) -> rows`` of this rank's per-slot ``table`` by global slot."""
        ...

    def local_slots(self, slots: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(which of the global ``slots`` this rank holds, their local positions)."""
        ...

    def get(self, indices: torch.Tensor) -> torch.Tensor:
        """Bank rows at global slots ``indices``."""
        ...

    def get_labels(self, indices: torch.Tensor) -> torch.Tensor:
        """Labels of the entries at global slots ``indices``."""
        ...

    def read_written(self, slots: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(embeddings as stored, dataset indices) of the slots the last enqueue wrote."""
        ...

    def unconstrained_ranks(self, query: torch.Tensor, indices: torch.Tensor,
                            chunk_size: int = 16384) -> torch.Tensor:
        """1-based rank of slot ``indices[b, j]`` in query ``b``'s unconstrained order."""
        ...
