"""CMSF-2Q: C = the slots of the top-k' neighbours of a second view u' in a second bank M'
(paper §3.1, "CMSF-2Q").

M' is aligned slot by slot with the main bank M: slot j of M' holds a *different* embedding of
the same image as slot j of M. The top-k' neighbours of the query's u' in M' give slot indices;
C is those slots of M, and the query's k neighbours are the top-k of ``u`` inside C. Since the
two embeddings of an image differ, C holds images close to the query under one view that need
not be close under the other -- far, yet pure, neighbours.

Two readings of "a different embedding", both selectable (``second_query``):

* ``'third_view'`` (the paper): M' is filled with the target embedding of a third,
  independently augmented view of each image (one more target forward per step; the pipeline
  must produce it, ``MultiView`` with three pipelines, and CMSF's ``extra_view`` names it).
* ``'previous_visit'`` (the authors' released code): u' is the image's target embedding from its
  previous visit (the previous epoch: other crop, older encoder), kept per dataset index in
  CMSF's :class:`~mmmsf.models.memories.EmbeddingCache`. The released code looks M' up from its
  per-image pool at search time; we write it into M' when the slot is written, which is the same
  vector unless an image is visited twice while its slot is still in M (impossible when M is
  smaller than the dataset, as in every paper configuration).

An image's first visit has no previous embedding: the released code then uses a random vector;
we leave such a query unconstrained (C = M) and keep its M' slot out of every C. The random
initial slots of M' are never in C either.
"""
from typing import Tuple

import torch

from mmmsf.registry import MODELS
from mmmsf.utils.dist_utils import all_gather_rows
from mmmsf.utils.knn_search import DEFAULT_CHUNK
from mmmsf.utils.sharding import random_unit_rows
from mmmsf.utils.slot_mask import SlotMask
from ..memories.neighbour_bank import NeighbourBank
from .constrained_selector import ConstrainedSelector

SECOND_QUERY_SOURCES = {'third_view': 'extra_view_target', 'previous_visit': 'previous_target'}


@MODELS.register_module()
class TwoQueueSelector(ConstrainedSelector):
    """C(b) = slots of the top-``topk_prime`` neighbours of u'_b in M' (valid slots only).

    Args:
        topk_prime: k', the size of C (reference: k' = k = 5 with a 128K bank). With k' < k the
            query's last k - k' neighbours come from outside C (nearest first).
        second_query: ``'third_view'`` (paper) or ``'previous_visit'`` (released code).

    State (buffers, in checkpoints): ``second_bank`` (K, D) aligned with M and ``second_valid``
    (K,) -- allocated by :meth:`bind` with the main bank's shape.
    """

    def __init__(self, topk_prime: int = 5, second_query: str = 'third_view'):
        super().__init__()
        if second_query not in SECOND_QUERY_SOURCES:
            raise KeyError(f'TwoQueueSelector second_query={second_query!r}: use one of '
                           f'{sorted(SECOND_QUERY_SOURCES)}.')
        if topk_prime < 1:
            raise ValueError(f'TwoQueueSelector topk_prime={topk_prime} must be >= 1.')
        self.topk_prime, self.second_query = topk_prime, second_query
        self.requires = (SECOND_QUERY_SOURCES[second_query], )
        self.chunk_size = DEFAULT_CHUNK

    def bind(self, bank: NeighbourBank) -> None:
        self.chunk_size = bank.chunk_size
        # sharded like M (same random stream as one randn(K, D) of the replicated M')
        second = random_unit_rows(bank.size, bank.dim, keep=bank.shard).to(bank.bank.dtype)
        self.register_buffer('second_bank', second)
        self.register_buffer('second_valid', torch.zeros(bank.local_size, dtype=torch.bool))
        for name in ('second_bank', 'second_valid'):
            self.register_sharded(name, bank.size, *bank.shard, bank.local_size)

    def _check_bound(self) -> None:
        if not hasattr(self, 'second_bank'):
            raise RuntimeError('TwoQueueSelector is not bound to a memory bank: use it as CMSF\'s '
                               'constrained_selector (CMSF calls bind()).')

    def _second(self, side) -> Tuple[torch.Tensor, torch.Tensor]:
        u2 = side[self.requires[0]]
        valid = side.get('previous_valid') if self.second_query == 'previous_visit' else None
        if valid is None:
            valid = torch.ones(u2.shape[0], dtype=torch.bool, device=u2.device)
        return u2, valid

    @torch.no_grad()
    def after_enqueue(self, bank: NeighbourBank, slots: torch.Tensor, query: torch.Tensor,
                      **side) -> None:
        """Write the step's (all-gathered) u' into the M' slots aligned with M's."""
        self._check_bound()
        u2, valid = self._second(side)
        u2_all, valid_all = all_gather_rows(u2), all_gather_rows(valid)
        if u2_all.shape[0] != slots.numel():
            raise RuntimeError(f'TwoQueueSelector: {u2_all.shape[0]} second embeddings for '
                               f'{slots.numel()} bank slots written this step.')
        mine, local = bank.local_slots(slots.to(self.second_bank.device))
        self.second_bank[local] = u2_all.to(self.second_bank)[mine]
        self.second_valid[local] = valid_all.to(self.second_valid.device)[mine]

    def constraint_mask(self, query: torch.Tensor, bank: NeighbourBank,
                        **side) -> Tuple[SlotMask, torch.Tensor]:
        self._check_bound()
        u2, valid = self._second(side)
        b, size = query.shape[0], bank.size
        kp = min(self.topk_prime, size)
        valid_fn = bank.slot_fn(self.second_valid)
        valid_slots = SlotMask((b, size), lambda s, e: valid_fn(s, e).to(query.device)[None, :]
                               .expand(b, e - s))
        sims, idx = bank.search_keys(u2.to(query.device), self.second_bank, kp, valid_slots)
        in_c = torch.isfinite(sims)  # -inf: fewer than k' valid slots in M'
        return (SlotMask.index_sets(idx, in_c, size),
                valid.to(query.device) & in_c.any(dim=1))

    def extra_repr(self) -> str:
        return f'topk_prime={self.topk_prime}, second_query={self.second_query!r}'
