"""CMSF-KM: C = the bank entries in the query's k-means cluster (paper §3.1, "CMSF-KM").

The cluster id of every dataset image comes from :class:`~mmmsf.engine.hooks.KMeansClusterHook`,
which clusters the cached latest target embedding of every image at each epoch end. Bank entries
are looked up by the dataset index written with them, with the *current* assignment (as in the
authors' code), so an entry enqueued before the last clustering carries its image's new cluster.
Before the first clustering every id is ``-1`` and all queries are unconstrained: epoch 1 is MSF.
"""
from typing import Tuple

import torch

from mmmsf.registry import MODELS
from mmmsf.utils.slot_mask import SlotMask
from ..memories.neighbour_bank import NeighbourBank
from .constrained_selector import ConstrainedSelector, per_image_lookup


@MODELS.register_module()
class KMeansSelector(ConstrainedSelector):
    """C(b) = {j : cluster(image(M_j)) = cluster(image(b))}; id ``-1`` = not clustered.

    State: ``cluster_ids`` (N,) long, one per dataset image, filled and broadcast by the
    k-means hook; saved in checkpoints.
    """
    requires = ('sample_idx', )
    per_image_buffers = ('cluster_ids', )

    def __init__(self):
        super().__init__()
        self.register_buffer('cluster_ids', torch.zeros(0, dtype=torch.long))

    @torch.no_grad()
    def set_cluster_ids(self, ids: torch.Tensor) -> None:
        """Install a new assignment (N,) (``-1`` = image not clustered)."""
        self.allocate_per_image('cluster_ids', ids.numel(), -1)
        self.cluster_ids.copy_(ids.to(self.cluster_ids.device, torch.long))

    def constraint_mask(self, query: torch.Tensor, bank: NeighbourBank, sample_idx: torch.Tensor,
                        **side) -> Tuple[SlotMask, torch.Tensor]:
        if self.cluster_ids.numel() == 0:
            b = query.shape[0]
            return (SlotMask.full(b, bank.size, True, query.device),
                    torch.zeros(b, dtype=torch.bool, device=query.device))
        q_ids = per_image_lookup(self.cluster_ids, sample_idx)
        slot_idx = bank.slot_fn(bank.sample_idx)  # global slots (this rank's, when sharded)

        def slot_ids(s: int, e: int) -> torch.Tensor:  # current cluster of each slot's image
            return per_image_lookup(self.cluster_ids, slot_idx(s, e).to(sample_idx.device))

        return SlotMask.same_key(q_ids, slot_ids, bank.size), q_ids >= 0
