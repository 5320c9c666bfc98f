"""Linear transfer evaluation on other image datasets (MSF paper Table 4).

"Only a single linear layer is trained on top of features. No train time augmentations are
used." (The authors published no code; this follows their description.) Per dataset:

1. frozen backbone features of every image (Resize / CenterCrop, no augmentation), cached;
2. L2-normalise + standardise with the training split's statistics (as the linear probe);
3. the learning rate (and optionally the weight decay) is chosen on a validation split -- the
   dataset's own ``val`` folder, or a stratified ``val_fraction`` of the training split;
4. the classifier is retrained with the chosen setting on train + val and scored on ``test``
   (top-1, or the mean per-class accuracy used for Aircraft, Pets, Caltech-101 and Flowers).
"""
from typing import Dict, Optional, Sequence

import torch

from .accuracy import mean_per_class_accuracy, topk_accuracy
from .feature_linear_classifier import (fit_standardizer, predict_scores, stratified_split,
                                        train_linear_classifier)

METRICS = ('top1', 'mean_per_class')


def score(scores: torch.Tensor, labels: torch.Tensor, metric: str) -> float:
    if metric == 'top1':
        return topk_accuracy(scores, labels, (1, ))['top1']
    if metric == 'mean_per_class':
        return mean_per_class_accuracy(scores, labels)
    raise KeyError(f'transfer metric {metric!r} is not one of {METRICS}.')


def transfer_linear_eval(train: Sequence[torch.Tensor], test: Sequence[torch.Tensor],
                         val: Optional[Sequence[torch.Tensor]] = None,
                         lrs: Sequence[float] = (0.001, 0.01, 0.1, 1.0),
                         weight_decays: Sequence[float] = (0.0, ),
                         epochs: int = 100, batch_size: int = 256, val_fraction: float = 0.2,
                         metric: str = 'top1', seed: int = 0,
                         device: Optional[torch.device] = None) -> Dict[str, float]:
    """Run steps 2-4 on raw features ``(feats, labels)`` of each split; returns ``{metric:
    test accuracy, 'val': best validation accuracy, 'lr': .., 'weight_decay': ..}``."""
    if metric not in METRICS:
        raise KeyError(f'transfer metric {metric!r} is not one of {METRICS}.')
    device = device or torch.device('cpu')
    x_tr, y_tr = train
    x_te, y_te = test
    num_classes = int(max(y_tr.max(), y_te.max())) + 1
    if val is None:
        tr_idx, va_idx = stratified_split(y_tr, val_fraction, seed)
        x_fit, y_fit, x_va, y_va = x_tr[tr_idx], y_tr[tr_idx], x_tr[va_idx], y_tr[va_idx]
    else:
        x_fit, y_fit, (x_va, y_va) = x_tr, y_tr, val
    if len(x_va) == 0:
        raise ValueError('the validation split is empty: the training split needs at least two '
                         'images of some class, or give a val folder.')

    def fit(x, y, lr, wd):
        std = fit_standardizer(x)
        layer = train_linear_classifier(std(x).to(device), y.to(device), num_classes, lr, wd,
                                        epochs, batch_size, seed=seed)
        return std, layer

    best = None
    for lr in lrs:
        for wd in weight_decays:
            std, layer = fit(x_fit, y_fit, lr, wd)
            acc = score(predict_scores(layer, std(x_va).to(device)).cpu(), y_va, metric)
            if best is None or acc > best[0]:
                best = (acc, lr, wd)
    val_acc, lr, wd = best
    std, layer = fit(torch.cat([x_fit, x_va]), torch.cat([y_fit, y_va]), lr, wd)
    test_acc = score(predict_scores(layer, std(x_te).to(device)).cpu(), y_te, metric)
    return {metric: test_acc, 'val': val_acc, 'lr': lr, 'weight_decay': wd,
            'num_train': len(x_fit) + len(x_va), 'num_test': len(x_te)}
