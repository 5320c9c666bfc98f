"""Top-k classification accuracy (%) for mmengine's evaluator (linear probe: top-1 and top-5)."""
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric

from mmmsf.registry import METRICS


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor,
                  topk: Sequence[int] = (1, 5)) -> Dict[str, float]:
    """``{'top1': .., 'top5': ..}`` in percent; a k larger than the number of classes counts
    every prediction as correct (as torchvision's reference ``accuracy``, capped at #classes)."""
    if len(scores) == 0:
        raise ValueError('accuracy of an empty prediction set: the evaluation split is empty.')
    kmax = min(max(topk), scores.shape[1])
    pred = scores.topk(kmax, dim=1).indices
    hit = pred == labels[:, None]
    return {f'top{k}': 100.0 * float(hit[:, :min(k, kmax)].any(dim=1).float().mean())
            for k in topk}


def mean_per_class_accuracy(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over classes of the per-class top-1 accuracy (%) (the metric of some transfer sets,
    e.g. Aircraft, Pets, Caltech-101, Flowers in BYOL's protocol)."""
    pred = scores.argmax(dim=1)
    accs = [float((pred[labels == c] == c).float().mean()) for c in labels.unique()]
    return 100.0 * sum(accs) / len(accs)


@METRICS.register_module()
class TopKAccuracy(BaseMetric):
    """Collects ``pred_score`` and ``gt_label`` of every sample (across ranks) and reports
    ``top1``, ``top5`` (and ``mean_per_class`` with ``mean_per_class=True``)."""

    default_prefix = 'linear'

    def __init__(self, topk: Sequence[int] = (1, 5), mean_per_class: bool = False,
                 collect_device: str = 'cpu', prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk, self.with_mean_per_class = tuple(topk), mean_per_class

    def process(self, data_batch, data_samples: Sequence) -> None:
        for ds in data_samples:
            score = ds['pred_score'] if isinstance(ds, dict) else ds.pred_score
            label = ds['gt_label'] if isinstance(ds, dict) else ds.gt_label
            self.results.append((score.detach().float().cpu(), int(label)))

    def compute_metrics(self, results: List) -> Dict[str, float]:
        scores = torch.stack([r[0] for r in results])
        labels = torch.tensor([r[1] for r in results], dtype=torch.long)
        out = topk_accuracy(scores, labels, self.topk)
        if self.with_mean_per_class:
            out['mean_per_class'] = mean_per_class_accuracy(scores, labels)
        return out
