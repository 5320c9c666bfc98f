"""kNN top-1 accuracy as an mmengine metric: the online kNN validation of pre-training.

The query features (``data_samples[i]['feature']``, L2-normalised, with ``gt_label``) are
collected batch by batch on every rank and gathered by mmengine's evaluator; the memory set's
features are handed over once per validation by :meth:`KNNAccuracy.set_memory`
(:class:`~mmmsf.engine.runner.KNNValLoop` embeds them). The vote is :func:`knn_classify`'s, the
one ``tools/knn_eval.py`` uses, so both report the same numbers for the same weights.
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.evaluator import BaseMetric

from mmmsf.registry import METRICS
from .knn import knn_classify


@METRICS.register_module()
class KNNAccuracy(BaseMetric):
    """``top1@k`` (%) of the k-NN vote of every query among the memory set, for k in ``ks``.

    Args:
        ks: the k of the vote (paper Table 2: 1 and 20).
        weighted: similarity-weighted vote ``exp(s / T)`` instead of the paper's majority vote.
        temperature: T of the weighted vote.
        gpu: faiss search on the GPU: ``'auto'`` (where faiss-gpu and CUDA are present),
            ``True`` or ``False``; the search is exact either way.
    """

    default_prefix = 'knn'

    def __init__(self, ks: Sequence[int] = (1, 20), weighted: bool = False,
                 temperature: float = 0.07, gpu: Union[bool, str] = 'auto',
                 collect_device: str = 'cpu', prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.ks, self.weighted, self.temperature, self.gpu = tuple(ks), weighted, temperature, gpu
        self.memory_feats: Optional[torch.Tensor] = None
        self.memory_labels: Optional[torch.Tensor] = None

    def set_memory(self, feats: torch.Tensor, labels: torch.Tensor) -> None:
        """The memory set the queries vote in: unit-norm features (N, D), labels (N, )."""
        if len(feats) == 0:
            raise ValueError('the kNN memory set is empty: point it at a labelled image folder.')
        if bool((labels < 0).any()):
            raise ValueError('the kNN memory set has unlabelled images: use an ImageFolder with '
                             'with_label=True for it.')
        self.memory_feats, self.memory_labels = feats, labels

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for ds in data_samples:
            self.results.append((ds['feature'].float().cpu(), int(ds['gt_label'])))

    def compute_metrics(self, results: List) -> Dict[str, float]:
        if self.memory_feats is None:
            raise RuntimeError('KNNAccuracy has no memory set: it is filled by KNNValLoop; use '
                               "val_cfg=dict(type='KNNValLoop').")
        if not results:
            raise ValueError('the kNN query set is empty.')
        feats = torch.stack([r[0] for r in results])
        labels = torch.tensor([r[1] for r in results], dtype=torch.long)
        res = knn_classify(self.memory_feats, self.memory_labels, feats, labels, ks=self.ks,
                           weighted=self.weighted, temperature=self.temperature, gpu=self.gpu)
        return {f'top1@{k}': res[f'{k}-NN'] for k in self.ks}
