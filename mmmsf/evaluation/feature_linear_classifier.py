"""A single linear layer trained on fixed, pre-computed features (transfer evaluation).

Features are standardised like the linear probe (L2-normalise, then per-dimension mean/var of
the training features); the layer is trained with mini-batch SGD (momentum 0.9), a cosine
learning-rate decay and cross-entropy, fully in memory.
"""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmmsf.models.necks.feature_standardizer import FeatureStandardizer


def fit_standardizer(train_feats: torch.Tensor, eps: float = 1e-5) -> FeatureStandardizer:
    """A :class:`FeatureStandardizer` with the statistics of ``train_feats`` (raw features)."""
    std = FeatureStandardizer(train_feats.shape[1], eps=eps)
    x = std.normalize(train_feats).double()
    var, mean = torch.var_mean(x, dim=0)  # unbiased, as the reference
    std.set_statistics(mean.float(), var.float(), len(x))
    return std


def train_linear_classifier(x: torch.Tensor, y: torch.Tensor, num_classes: int, lr: float,
                            weight_decay: float = 0.0, epochs: int = 100, batch_size: int = 256,
                            momentum: float = 0.9, seed: int = 0) -> nn.Linear:
    """Train ``nn.Linear(D, num_classes)`` on (already standardised) features ``x``."""
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f'{len(x)} features and {len(y)} labels: need the same positive number.')
    if int(y.max()) >= num_classes or int(y.min()) < 0:
        raise ValueError(f'labels must lie in [0, {num_classes}).')
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    layer = nn.Linear(x.shape[1], num_classes).to(x.device)
    opt = torch.optim.SGD(layer.parameters(), lr=lr, momentum=momentum,
                          weight_decay=weight_decay)
    steps_per_epoch = (len(x) + batch_size - 1) // batch_size
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g).to(x.device)
        for start in range(0, len(x), batch_size):
            idx = perm[start:start + batch_size]
            loss = F.cross_entropy(layer(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return layer


@torch.no_grad()
def predict_scores(layer: nn.Linear, x: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
    return torch.cat([layer(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def stratified_split(labels: torch.Tensor, val_fraction: float,
                     seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """(train indices, val indices): ``val_fraction`` of each class (at least one image of
    every class with two or more images) goes to validation."""
    if not 0 < val_fraction < 1:
        raise ValueError(f'val_fraction={val_fraction} must be in (0, 1).')
    g = torch.Generator().manual_seed(seed)
    tr, va = [], []
    for c in labels.unique():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_val = min(len(idx) - 1, max(1, round(val_fraction * len(idx)))) if len(idx) > 1 else 0
        va.append(idx[:n_val])
        tr.append(idx[n_val:])
    return torch.sort(torch.cat(tr)).values, torch.sort(torch.cat(va)).values
