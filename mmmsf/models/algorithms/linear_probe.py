"""Linear evaluation of a frozen backbone (MSF paper §3.2 and Table 2 "Top-1 Linear").

Reference protocol (CompRess ``eval_linear.py``, used by the MSF authors)::

    f = backbone(x)                       # frozen, always in eval mode (BN statistics fixed)
    y = (f / ||f|| - mean) / sqrt(var + 1e-5)   # FeatureStandardizer, training-set statistics
    logits = Linear(feat_dim, num_classes)(y)   # the only trained layer

trained with SGD (lr 0.01, momentum 0.9, wd 1e-4, batch 256) for 40 epochs, lr x0.1 at epochs
15 and 30 (see ``configs/_base_/schedules/sgd_steplr_40e_linear.py``).

With ``backbone=None`` the model takes pre-computed features as ``inputs`` (the fast probe of
``tools/linear_eval.py --precompute-features``).
"""
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement

from mmmsf.registry import MODELS
from mmmsf.utils.backbone_weights import load_backbone_weights


@MODELS.register_module()
class LinearProbe(BaseModel):
    """Frozen backbone + :class:`FeatureStandardizer` + one ``nn.Linear``.

    Args:
        backbone: backbone config, or None when the inputs are pre-computed features.
        num_classes: number of classes; None builds no head (a frozen feature extractor, e.g.
            for the transfer evaluation, which trains one classifier per dataset itself).
        feat_dim: feature dimension (default: the backbone's ``feat_dim``).
        pretrained: checkpoint whose backbone is evaluated (an mmmsf checkpoint, a converted
            authors' checkpoint or a torchvision-style state dict); None = random initialisation
            (the paper's "Random-init" row).
        pretrained_prefix: key prefix of the backbone in ``pretrained`` (``'backbone.'``: the
            online backbone; ``'target_backbone.'``: the EMA target; ``''``: a bare backbone).
        standardizer: config of the :class:`FeatureStandardizer`.
    """

    def __init__(self, backbone: Optional[dict], num_classes: Optional[int],
                 feat_dim: Optional[int] = None,
                 pretrained: Optional[str] = None, pretrained_prefix: str = 'backbone.',
                 standardizer: Optional[dict] = None, data_preprocessor: Optional[dict] = None,
                 init_cfg=None):
        if data_preprocessor is None:
            data_preprocessor = (dict(type='MultiViewDataPreprocessor') if backbone is not None
                                 else dict(type='BaseDataPreprocessor'))
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if num_classes is not None and num_classes < 2:
            raise ValueError(f'LinearProbe num_classes={num_classes}: need at least 2 classes.')
        self.backbone = MODELS.build(backbone) if backbone is not None else None
        if feat_dim is None:
            feat_dim = getattr(self.backbone, 'feat_dim', None)
            if feat_dim is None:
                raise ValueError('LinearProbe needs feat_dim (the backbone has no feat_dim).')
        if self.backbone is not None:
            for p in self.backbone.parameters():
                p.requires_grad = False
        self.pretrained, self.pretrained_prefix = pretrained, pretrained_prefix
        self.feat_dim, self.num_classes = feat_dim, num_classes
        self.standardizer = MODELS.build(dict(type='FeatureStandardizer', dim=feat_dim,
                                              **(standardizer or {})))
        self.head = nn.Linear(feat_dim, num_classes) if num_classes is not None else None

    def init_weights(self) -> None:
        """Random init of the head (``nn.Linear``'s default, as the reference), then the
        backbone from ``pretrained`` (strict: every backbone weight must be in the file)."""
        super().init_weights()
        if self.backbone is not None and self.pretrained:
            load_backbone_weights(self.backbone, self.pretrained, self.pretrained_prefix)

    def train(self, mode: bool = True) -> 'LinearProbe':
        """The backbone stays in eval mode whatever ``mode`` is (frozen BN statistics)."""
        super().train(mode)
        if self.backbone is not None:
            self.backbone.eval()
        return self

    @torch.no_grad()
    def extract_feat(self, inputs: torch.Tensor) -> torch.Tensor:
        """Pooled features of the frozen backbone (or the pre-computed features themselves)."""
        if self.backbone is None:
            return inputs.float()
        self.backbone.eval()
        return self.backbone(inputs)

    @staticmethod
    def _first_view(inputs: Union[torch.Tensor, List]) -> torch.Tensor:
        if isinstance(inputs, (list, tuple)):
            if inputs and isinstance(inputs[0], torch.Tensor) and inputs[0].dim() == 1:
                return torch.stack(list(inputs))  # pre-computed features, pseudo-collated
            return inputs[0]
        return inputs

    def features(self, inputs) -> torch.Tensor:
        """Backbone features (not standardised) of a preprocessed batch: the first view of
        multi-view inputs, or the pre-computed features themselves."""
        return self.extract_feat(self._first_view(inputs))

    def logits(self, inputs) -> torch.Tensor:
        if self.head is None:
            raise RuntimeError('this LinearProbe has no head (num_classes=None): it only '
                               'extracts features.')
        return self.head(self.standardizer(self.features(inputs)))

    def forward(self, inputs, data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor'):
        if mode == 'tensor':
            return self.logits(inputs)
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            logits = self.logits(inputs)
            for ds, score in zip(data_samples, logits.softmax(dim=1)):
                ds.set_field(score.detach(), 'pred_score')
            return data_samples
        raise RuntimeError(f'LinearProbe.forward: invalid mode {mode!r}.')

    def loss(self, inputs, data_samples: List[BaseDataElement]) -> Dict[str, torch.Tensor]:
        if not data_samples or 'gt_label' not in data_samples[0]:
            raise ValueError('linear evaluation needs labelled images (gt_label): set '
                             'with_label=True on the dataset.')
        labels = torch.tensor([int(ds.gt_label) for ds in data_samples], dtype=torch.long)
        if int(labels.max()) >= self.num_classes or int(labels.min()) < 0:
            raise ValueError(f'label {int(labels.max())} outside [0, {self.num_classes}): set '
                             'model.num_classes to the number of classes of the dataset.')
        logits = self.logits(inputs)
        labels = labels.to(logits.device)
        loss = F.cross_entropy(logits, labels)
        acc = (logits.argmax(dim=1) == labels).float().mean() * 100
        return dict(loss=loss, train_top1=acc.detach())
