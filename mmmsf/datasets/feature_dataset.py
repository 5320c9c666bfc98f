"""Pre-computed frozen features as a dataset (the fast linear probe and transfer evaluation).

The ``.npz`` file is written by :func:`mmmsf.evaluation.feature_extraction.extract_features`
(``feats`` (N, D) float32, ``labels`` (N, ), ``fingerprint``). Each item is packed like an image
sample: ``inputs`` = the feature vector, ``data_samples`` = a data element with ``gt_label``
and ``sample_idx``.
"""
import os.path as osp

import numpy as np
import torch
from mmengine.structures import BaseDataElement
from torch.utils.data import Dataset

from mmmsf.registry import DATASETS


@DATASETS.register_module()
class FeatureDataset(Dataset):
    """Rows of a feature file.

    Args:
        feature_file: ``.npz`` with ``feats`` and ``labels``.
        classes: optional class names (stored as ``metainfo['classes']``).
    """

    def __init__(self, feature_file: str, classes=None):
        if not osp.isfile(feature_file):
            raise FileNotFoundError(f'feature file {feature_file!r} does not exist: extract the '
                                    'features first (tools/linear_eval.py --precompute-features).')
        data = np.load(feature_file)
        if 'feats' not in data or 'labels' not in data:
            raise KeyError(f'{feature_file} lacks the arrays feats/labels: it is not a feature '
                           'file of mmmsf; delete it and extract again.')
        self.feats = torch.from_numpy(np.ascontiguousarray(data['feats'], dtype=np.float32))
        self.labels = torch.from_numpy(data['labels'].astype(np.int64))
        if len(self.feats) != len(self.labels) or len(self.feats) == 0:
            raise ValueError(f'{feature_file}: {len(self.feats)} features and {len(self.labels)} '
                             'labels; expected the same positive number.')
        if bool((self.labels < 0).any()):
            raise ValueError(f'{feature_file} has unlabelled rows (label -1); linear evaluation '
                             'needs a labelled dataset.')
        self.fingerprint = str(data['fingerprint']) if 'fingerprint' in data else feature_file
        self.metainfo = dict(classes=tuple(classes) if classes else None,
                             feature_file=feature_file)

    @property
    def feat_dim(self) -> int:
        return int(self.feats.shape[1])

    def __len__(self) -> int:
        return len(self.feats)

    def __getitem__(self, idx: int) -> dict:
        sample = BaseDataElement(metainfo=dict(sample_idx=int(idx)))
        sample.gt_label = int(self.labels[idx])
        return dict(inputs=self.feats[idx], data_samples=sample)
