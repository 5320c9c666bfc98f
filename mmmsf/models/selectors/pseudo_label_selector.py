"""Semi-supervised CMSF: C = the bank entries sharing the query's (pseudo-)label (paper §3.2).

Each query gets a constraint label: its ground-truth label if its image is in the labelled
subset; otherwise the argmax of a small MLP classifier on its target embedding ``u`` when the
softmax confidence is at least ``threshold`` (0.85 in the reference); otherwise none, and the
query is unconstrained (plain MSF, C = M). Each bank slot keeps the constraint label its entry
was written with (as the authors' code), and C(b) = {j : label(M_j) = label(b)}.

The classifier (Linear-BN-ReLU-Linear, 512 -> 1024 -> classes for ResNet-50) is trained by
:meth:`PseudoLabelSelector.fit` on the cached target embeddings of the labelled images, which
:class:`~mmmsf.engine.hooks.PseudoLabelHook` runs at mid-epoch and epoch end; otherwise it is
frozen (no gradients from the MSF loss, always in eval mode). Until its first training no
pseudo-label is given.
"""
import copy
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmmsf.registry import MODELS
from mmmsf.utils.dist_utils import all_gather_rows
from mmmsf.utils.slot_mask import SlotMask
from ..memories.neighbour_bank import NeighbourBank
from .constrained_selector import ConstrainedSelector, per_image_lookup


def build_pseudo_label_mlp(in_channels: int, hid_channels: int, num_classes: int) -> nn.Module:
    """The reference pseudo-labelling head: Linear -> BN1d -> ReLU -> Linear."""
    return nn.Sequential(nn.Linear(in_channels, hid_channels), nn.BatchNorm1d(hid_channels),
                         nn.ReLU(inplace=True), nn.Linear(hid_channels, num_classes))


@MODELS.register_module()
class PseudoLabelSelector(ConstrainedSelector):
    """C(b) = {j : constraint label of M_j = constraint label of b}, labels as described above.

    Args:
        num_classes: classes of the classifier (1000 for ImageNet).
        threshold: minimum softmax confidence of a pseudo-label (reference 0.85).
        hid_channels: hidden width of the classifier (reference 2 x 512 = 1024).
        in_channels: embedding dimension; default the memory bank's.

    State (in checkpoints): ``classifier``; ``trained`` (the classifier was trained at least
    once); ``is_labelled`` (N,) bool, the labelled subset, set by the hook from its file list;
    ``slot_labels`` (K,) the constraint label of each bank slot (this rank's K/W when sharded).
    """
    requires = ('sample_idx', 'labels')
    per_image_buffers = ('is_labelled', )

    def __init__(self, num_classes: int, threshold: float = 0.85, hid_channels: int = 1024,
                 in_channels: Optional[int] = None):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f'PseudoLabelSelector num_classes={num_classes} must be >= 2.')
        self.num_classes, self.threshold = num_classes, threshold
        self.hid_channels, self.in_channels = hid_channels, in_channels
        self.register_buffer('is_labelled', torch.zeros(0, dtype=torch.bool))
        self.register_buffer('trained', torch.zeros((), dtype=torch.bool))
        if in_channels is not None:
            self._build_classifier(in_channels)

    def _build_classifier(self, in_channels: int) -> None:
        self.in_channels = in_channels
        self.classifier = build_pseudo_label_mlp(in_channels, self.hid_channels,
                                                 self.num_classes)
        for p in self.classifier.parameters():
            p.requires_grad = False
        self.classifier.eval()

    def bind(self, bank: NeighbourBank) -> None:
        if self.in_channels is None:
            self._build_classifier(bank.dim)
        elif self.in_channels != bank.dim:
            raise ValueError(f'PseudoLabelSelector in_channels={self.in_channels} differs from '
                             f'the memory bank dim {bank.dim}; drop in_channels.')
        self.register_buffer('slot_labels', torch.full((bank.local_size, ), -1,
                                                       dtype=torch.long))
        self.register_sharded('slot_labels', bank.size, *bank.shard, bank.local_size)

    def train(self, mode: bool = True):
        super().train(mode)
        if hasattr(self, 'classifier'):
            self.classifier.eval()  # frozen: its BN statistics belong to the hook's training
        return self

    # ------------------------------------------------------------------ labels
    @torch.no_grad()
    def set_labelled(self, is_labelled: torch.Tensor) -> None:
        self.allocate_per_image('is_labelled', is_labelled.numel(), False)
        self.is_labelled.copy_(is_labelled.to(self.is_labelled.device, torch.bool))

    def fit(self, x: torch.Tensor, y: torch.Tensor, epochs: int = 10, lr: float = 0.01,
            momentum: float = 0.9, weight_decay: float = 1e-4, batch_size: int = 256,
            seed: int = 0) -> Tuple[Dict[str, torch.Tensor], float, float]:
        """Train a copy of the classifier on embeddings ``x`` (n, D) with labels ``y`` (n,).

        Starts from the current weights, a fresh SGD per call (authors' code: 10 epochs, lr
        0.01, momentum 0.9, weight decay 1e-4, batch 256), batches ordered by ``seed``; a batch
        of one sample is skipped (BatchNorm). Returns (trained state dict, final training
        accuracy, last batch loss); install the state with :meth:`load_classifier`.
        """
        clf = copy.deepcopy(self.classifier)
        for p in clf.parameters():
            p.requires_grad = True
        clf.train()
        opt = torch.optim.SGD(clf.parameters(), lr=lr, momentum=momentum,
                              weight_decay=weight_decay)
        gen = torch.Generator().manual_seed(seed)
        n = x.shape[0]
        loss = torch.zeros(())
        with torch.enable_grad():
            for _ in range(epochs):
                order = torch.randperm(n, generator=gen).to(x.device)
                for start in range(0, n, batch_size):
                    batch = order[start:start + batch_size]
                    if batch.numel() < 2:  # BN needs two samples
                        continue
                    loss = F.cross_entropy(clf(x[batch]), y[batch])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
        clf.eval()
        with torch.no_grad():
            acc = (clf(x).argmax(dim=1) == y).float().mean()
        for p in clf.parameters():
            p.requires_grad = False
        return clf.state_dict(), float(acc), float(loss.detach())

    @torch.no_grad()
    def load_classifier(self, state: Dict[str, torch.Tensor]) -> None:
        """Install newly trained classifier weights (from the pseudo-label hook)."""
        self.classifier.load_state_dict(state)
        self.trained.fill_(True)

    @torch.no_grad()
    def constraint_labels(self, query: torch.Tensor, sample_idx: torch.Tensor,
                          labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Per query: ``labels`` (constraint label or -1), ``labelled``, ``confident``,
        ``pseudo`` (argmax of the classifier) and ``confidence``."""
        if not hasattr(self, 'classifier'):
            raise RuntimeError('PseudoLabelSelector is not bound to a memory bank: use it as '
                               'CMSF\'s constrained_selector (CMSF calls bind()).')
        labelled = per_image_lookup(self.is_labelled.long(), sample_idx) > 0
        labelled &= labels >= 0
        self.classifier.eval()
        prob = self.classifier(query.to(self.classifier[0].weight.dtype)).softmax(dim=1)
        confidence, pseudo = prob.max(dim=1)
        # an untrained classifier gives no pseudo-label (a tensor test: no device sync)
        confident = ~labelled & (confidence >= self.threshold) & self.trained
        none = torch.full_like(labels, -1)
        out = torch.where(labelled, labels, torch.where(confident, pseudo, none))
        return dict(labels=out, labelled=labelled, confident=confident, pseudo=pseudo,
                    confidence=confidence)

    @torch.no_grad()
    def step_inputs(self, query: torch.Tensor, sample_idx: torch.Tensor = None,
                    labels: torch.Tensor = None, **side) -> Dict[str, Dict[str, torch.Tensor]]:
        """The step's :meth:`constraint_labels` (one classifier forward per step), handed back
        to :meth:`after_enqueue` and :meth:`select` as ``pseudo_labels``."""
        return dict(pseudo_labels=self.constraint_labels(query, sample_idx, labels))

    def _labels_of(self, query, sample_idx, labels, pseudo_labels) -> Dict[str, torch.Tensor]:
        if pseudo_labels is not None:
            return pseudo_labels
        return self.constraint_labels(query, sample_idx, labels)

    @torch.no_grad()
    def after_enqueue(self, bank: NeighbourBank, slots: torch.Tensor, query: torch.Tensor,
                      sample_idx=None, labels=None, pseudo_labels=None, **side) -> None:
        """Write the (all-gathered) constraint labels of this step's entries to their slots."""
        lab = self._labels_of(query, sample_idx, labels, pseudo_labels)['labels']
        lab_all = all_gather_rows(lab)
        if lab_all.shape[0] != slots.numel():
            raise RuntimeError(f'PseudoLabelSelector: {lab_all.shape[0]} labels for '
                               f'{slots.numel()} bank slots written this step.')
        mine, local = bank.local_slots(slots.to(self.slot_labels.device))
        self.slot_labels[local] = lab_all.to(self.slot_labels.device)[mine]

    def _mask(self, bank: NeighbourBank, q_lab: torch.Tensor) -> SlotMask:
        return SlotMask.same_key(q_lab, bank.slot_fn(self.slot_labels), bank.size)

    def constraint_mask(self, query: torch.Tensor, bank: NeighbourBank, sample_idx: torch.Tensor,
                        labels: torch.Tensor, pseudo_labels=None,
                        **side) -> Tuple[SlotMask, torch.Tensor]:
        q_lab = self._labels_of(query, sample_idx, labels, pseudo_labels)['labels']
        return self._mask(bank, q_lab), q_lab >= 0

    @torch.no_grad()
    def select(self, query: torch.Tensor, bank: NeighbourBank, k: int, sample_idx: torch.Tensor,
               labels: torch.Tensor, pseudo_labels=None, **side):
        info = self._labels_of(query, sample_idx, labels, pseudo_labels)
        q_lab = info['labels']
        out = self.topk_in_set(query, bank, k, self._mask(bank, q_lab), q_lab >= 0)
        # logged ratios, per query (numerator, denominator) terms: unlabelled queries with a
        # confident pseudo-label, and the accuracy of those pseudo-labels where the ground
        # truth is known
        unlabelled = ~info['labelled']
        scored = info['confident'] & (labels >= 0)
        out.extras['ratio/pseudo_label_frac'] = torch.stack(
            [info['confident'], unlabelled], dim=1).float()
        out.extras['ratio/pseudo_label_acc'] = torch.stack(
            [(info['pseudo'] == labels) & scored, scored], dim=1).float()
        return out

    def extra_repr(self) -> str:
        return f'num_classes={self.num_classes}, threshold={self.threshold}'
