"""MSF's unconstrained selector: the exact top-k of the whole bank (paper Eq. 1)."""
import torch

from mmmsf.registry import MODELS
from ..memories.neighbour_bank import NeighbourBank
from .base_selector import BaseSelector, SelectorOutput


@MODELS.register_module()
class TopKSelector(BaseSelector):
    """C = the whole memory bank. With the query enqueued first, neighbour #1 is itself."""

    def select(self, query: torch.Tensor, bank: NeighbourBank, k: int, **side) -> SelectorOutput:
        _, idx = bank.search(query, k)
        return SelectorOutput(idx, torch.zeros(query.shape[0], dtype=torch.bool,
                                               device=query.device))
