"""MSF: Mean Shift for self-supervised learning (Koohpayegani, Tejankar, Pirsiavash, ICCV 2021).

One step (reference code order, paper Alg. 1), all of it in :meth:`MSF.loss`::

    u = normalize(target_proj(target_backbone(x_target)))      # EMA encoder, no grad
    v = normalize(predictor(proj(backbone(x_online))))          # online encoder
    slots = bank.enqueue(all_gather(u))                         # so u is its own neighbour #1
    after_enqueue(slots, u, side)                               # no-op (CMSF: M', labels, cache)
    idx = selector(u, bank, k)                                  # top-k (MSF) or constrained (CMSF)
    loss = mean_b (1/k) sum_j ||v_b - bank[idx_bj]||^2          # Eq. 2

The EMA update of the target (Eq. 3, ``m = 0.99`` on the *old* weights) is done by
:class:`~mmmsf.engine.hooks.MomentumUpdateHook` before each step. With ``topk=1`` the only
neighbour is ``u`` itself and the loss is exactly BYOL's with an asymmetric loss (BYOL-asym).
"""
import contextlib
import copy
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement

from mmmsf.registry import MODELS
from mmmsf.utils.dist_utils import batch_shuffle, batch_unshuffle
from mmmsf.utils.sharded_state import full_state
from ..selectors import SelectorOutput


@MODELS.register_module()
class MSF(BaseModel):
    """Mean-shift self-supervised learner.

    Args:
        backbone, neck, predictor: configs of the online encoder (backbone + projection MLP) and
            of the online prediction MLP. The target is an EMA copy of backbone + neck.
        memory_bank: config of :class:`~mmmsf.models.memories.NNMemoryBank`.
        topk: k, the number of neighbours (5 in the paper's main runs; 1 = BYOL-asym).
        selector: neighbour selector (default: unconstrained top-k).
        loss: config of :class:`~mmmsf.models.losses.MeanShiftLoss`.
        target_bn: ``'shuffle'`` (ShuffleBN, reference), ``'sync'`` (SyncBN in the target,
            GPU only) or ``'none'``.
        target_view, online_view: which pipeline view feeds each encoder (``MultiView`` order).
    """

    def __init__(self, backbone: dict, neck: dict, predictor: dict, memory_bank: dict,
                 topk: int = 5, selector: dict = dict(type='TopKSelector'),
                 loss: dict = dict(type='MeanShiftLoss'), target_bn: str = 'shuffle',
                 target_view: int = 0, online_view: int = 1,
                 data_preprocessor: Optional[dict] = None, init_cfg=None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='MultiViewDataPreprocessor')
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if target_bn not in ('shuffle', 'sync', 'none'):
            raise KeyError(f"MSF target_bn={target_bn!r}: use 'shuffle', 'sync' or 'none'.")
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck)
        self.predictor = MODELS.build(predictor)
        self.target_backbone = MODELS.build(backbone)
        self.target_neck = MODELS.build(neck)
        if target_bn == 'sync':
            self.target_backbone = nn.SyncBatchNorm.convert_sync_batchnorm(self.target_backbone)
            self.target_neck = nn.SyncBatchNorm.convert_sync_batchnorm(self.target_neck)
        for p in self.target_parameters():
            p.requires_grad = False
        self.memory_bank = MODELS.build(memory_bank)
        if topk < 1 or topk > self.memory_bank.size:
            raise ValueError(f'topk={topk} must be in [1, memory bank size '
                             f'{self.memory_bank.size}]: lower model.topk or enlarge the bank.')
        if self.neck.out_channels != self.memory_bank.dim:
            raise ValueError(f'memory_bank.dim={self.memory_bank.dim} differs from the '
                             f'projection output {self.neck.out_channels}; make them equal.')
        self.topk = topk
        self.selector = MODELS.build(selector)
        self.loss_module = MODELS.build(loss)
        self.target_bn = target_bn
        self.target_view, self.online_view = target_view, online_view

    # ------------------------------------------------------------------ target encoder
    def online_parameters(self):
        return list(self.backbone.parameters()) + list(self.neck.parameters())

    def target_parameters(self):
        return list(self.target_backbone.parameters()) + list(self.target_neck.parameters())

    def init_weights(self) -> None:
        """Initialise the online encoder, then make the target an exact copy (paper §3)."""
        super().init_weights()
        self.target_backbone.load_state_dict(self.backbone.state_dict())
        self.target_neck.load_state_dict(self.neck.state_dict())

    @torch.no_grad()
    def momentum_update(self, momentum: float) -> None:
        """Eq. 3: ``theta_t <- m * theta_t + (1 - m) * theta_o``; ``m`` weights the OLD target.

        (mmselfsup's convention; mmengine's ExponentialMovingAverage uses ``1 - m``.) BN running
        statistics are not averaged: the target keeps its own, as in the reference code.
        """
        for p_o, p_t in zip(self.online_parameters(), self.target_parameters()):
            p_t.mul_(momentum).add_(p_o.detach(), alpha=1.0 - momentum)

    @contextlib.contextmanager
    def full_state(self, dst: int = 0):
        """Within the block, ``state_dict()`` on rank ``dst`` holds every sharded table whole
        (the bank, M', the slot labels, the per-image cache), under the replicated keys and
        shapes. Entering gathers them to ``dst``'s CPU: call it on every rank (a collective;
        nothing to do for a replicated bank). The Runner's checkpoints do this by themselves
        (``ShardedStateRunner``)."""
        with full_state(self, dst):
            yield self

    # ------------------------------------------------------------------ embeddings
    def extract_feat(self, inputs: torch.Tensor) -> torch.Tensor:
        """Pooled online-backbone features (what kNN / linear evaluation use)."""
        return self.backbone(inputs)

    @torch.no_grad()
    def target_embed(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised target embedding ``u`` (ShuffleBN around the target forward)."""
        if self.target_bn == 'shuffle':
            x, unshuffle = batch_shuffle(x)
            u = self.target_neck(self.target_backbone(x))
            u = batch_unshuffle(u, unshuffle)
        else:
            u = self.target_neck(self.target_backbone(x))
        return F.normalize(u.float(), dim=1)

    @torch.no_grad()
    def embed(self, x: torch.Tensor, which: str = 'backbone') -> torch.Tensor:
        """L2-normalised float32 embedding of ``x`` for analysis (no ShuffleBN, no collective):
        ``'backbone'``: the pooled online-backbone feature (what kNN uses); ``'target'``: the
        target projection, the space of the memory bank."""
        if which == 'backbone':
            f = self.extract_feat(x)
        elif which == 'target':
            f = self.target_neck(self.target_backbone(x))
        else:
            raise KeyError(f"MSF.embed which={which!r}: 'backbone' or 'target'.")
        return F.normalize(f.float(), dim=1)

    def online_embed(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised online prediction ``v``."""
        return F.normalize(self.predictor(self.neck(self.backbone(x))).float(), dim=1)

    # ------------------------------------------------------------------ training step
    @staticmethod
    def side_info(data_samples: Optional[List[BaseDataElement]], batch: int,
                  device: torch.device) -> Dict[str, torch.Tensor]:
        """Per-query dataset index and label (``-1`` where unknown)."""
        idx = torch.full((batch, ), -1, dtype=torch.long)
        labels = torch.full((batch, ), -1, dtype=torch.long)
        for i, ds in enumerate(data_samples or []):
            idx[i] = int(ds.metainfo.get('sample_idx', -1))
            if 'gt_label' in ds:
                labels[i] = int(ds.gt_label)
        return dict(sample_idx=idx.to(device), labels=labels.to(device))

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'tensor':
            x = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
            return self.extract_feat(x)
        if mode == 'predict':
            x = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
            feats = self.extract_feat(x)
            for ds, f in zip(data_samples, feats):
                ds.set_field(f, 'feature')
            return data_samples
        raise RuntimeError(f'MSF.forward: invalid mode {mode!r}.')

    def loss(self, inputs: Sequence[torch.Tensor],
             data_samples: Optional[List[BaseDataElement]] = None) -> Dict[str, torch.Tensor]:
        if len(inputs) <= max(self.target_view, self.online_view):
            raise ValueError(f'MSF needs at least {max(self.target_view, self.online_view) + 1} '
                             f'views, got {len(inputs)}: use MultiView in the train pipeline.')
        u = self.target_embed(inputs[self.target_view])            # target, no grad
        v = self.online_embed(inputs[self.online_view])            # online prediction
        side = self.side_info(data_samples, u.shape[0], u.device)  # index, label
        side.update(self.extra_side_info(inputs, u, side))         # CMSF: the selector's inputs
        slots = self.memory_bank.enqueue(u, side['labels'], side['sample_idx'])
        self.after_enqueue(slots, u, side)                         # CMSF: M', slot labels, cache
        neighbours = self.select_neighbours(u, side)
        losses = self.mean_shift_losses(v, neighbours)             # Eq. 2
        losses.update(self.step_stats(u, neighbours, side))
        return losses

    def extra_side_info(self, inputs, u: torch.Tensor, side: dict) -> Dict[str, torch.Tensor]:
        """Hook for subclasses (CMSF) that need more side information than index and label."""
        return {}

    def after_enqueue(self, slots: torch.Tensor, u: torch.Tensor,
                      side: Dict[str, torch.Tensor]) -> None:
        """Called once per step after the (all-gathered) targets went to bank ``slots``."""

    def select_neighbours(self, u: torch.Tensor,
                          side: Dict[str, torch.Tensor]) -> Dict[str, SelectorOutput]:
        """The step's neighbour sets by name (MSF: ``'unconstrained'``, the plain top-k)."""
        return dict(unconstrained=self.selector(u, self.memory_bank, self.topk, **side))

    def mean_shift_losses(self, v: torch.Tensor,
                          neighbours: Dict[str, SelectorOutput]) -> Dict[str, torch.Tensor]:
        """Eq. 2 of ``v`` against its neighbours in the bank (losses only, no state change)."""
        nb = self.memory_bank.get(neighbours['unconstrained'].indices)
        return dict(loss=self.loss_module(v, nb))

    @torch.no_grad()
    def step_stats(self, u: torch.Tensor, neighbours: Dict[str, SelectorOutput],
                   side: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Logged statistics of the step: purity and the collapse monitor ``target_std``."""
        out = self.neighbour_stats(neighbours['unconstrained'], side['labels'])
        out['target_std'] = target_std(u)
        return out

    @torch.no_grad()
    def neighbour_stats(self, sel: SelectorOutput, labels: torch.Tensor,
                        prefix: str = '') -> Dict[str, torch.Tensor]:
        """Purity (paper Fig. 4): share of neighbours 2..k with the query's label (self excluded)."""
        out: Dict[str, torch.Tensor] = {}
        has_label = labels >= 0
        if sel.indices.shape[1] < 2:
            return out
        bank = self.memory_bank
        # a sharded bank fetches the labels from their owners: every rank takes part
        any_label = bool(has_label.any())
        if any_label or bank.is_split:
            nb_labels = bank.get_labels(sel.indices[:, 1:])
        if any_label:
            same = (nb_labels == labels[:, None]).float()[has_label]
            out[f'{prefix}purity'] = same.mean()
        return out


def target_std(u: torch.Tensor) -> torch.Tensor:
    """Collapse monitor: per-dimension std of the unit targets, averaged (1/sqrt(D) if spread,
    0 if collapsed to one point)."""
    return u.detach().std(dim=0).mean() if u.shape[0] > 1 else u.new_zeros(())
