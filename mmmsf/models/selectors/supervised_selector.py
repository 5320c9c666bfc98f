"""Supervised CMSF: C = the bank entries with the query's ground-truth label (paper §3.3)."""
from typing import Tuple

import torch

from mmmsf.registry import MODELS
from mmmsf.utils.slot_mask import SlotMask
from ..memories.neighbour_bank import NeighbourBank
from .constrained_selector import ConstrainedSelector


@MODELS.register_module()
class SupervisedSelector(ConstrainedSelector):
    """C(b) = {j : label(M_j) = label(b)}; bank entries without a label (``-1``, e.g. the random
    initial entries) are never in C. Queries without a label are unconstrained (C = M).

    The labels of the bank entries are the ones written with them (``memory_bank.labels``), so
    neighbour purity is 100% by construction (the paper's remark). Reference: k = 10, 128K bank,
    constrained term only.
    """
    requires = ('labels', )

    def constraint_mask(self, query: torch.Tensor, bank: NeighbourBank, labels: torch.Tensor,
                        **side) -> Tuple[SlotMask, torch.Tensor]:
        return SlotMask.same_key(labels, bank.slot_fn(bank.labels), bank.size), labels >= 0
