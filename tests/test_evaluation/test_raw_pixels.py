"""The raw-pixel kNN baseline against a brute-force kNN on real images."""
import os
import os.path as osp

import cv2
import numpy as np
import torch
from mmengine.runner import Runner

from mmmsf.evaluation import knn_correct, raw_pixel_features
from mmmsf.models.data_preprocessors import MultiViewDataPreprocessor
from tests.conftest import MINI

MEAN, STD = [125.307, 122.961, 113.8575], [51.5865, 50.847, 51.255]


def _files(split, per_class):
    classes = sorted(os.listdir(osp.join(MINI, split)))
    return [(f'{c}/{i:04d}.jpg', ci) for ci, c in enumerate(classes) for i in range(per_class)]


def _loader(tmp_path, split, per_class):
    files = _files(split, per_class)
    ann = tmp_path / f'{split}.txt'
    ann.write_text('\n'.join(f for f, _ in files) + '\n')
    return Runner.build_dataloader(dict(
        batch_size=7, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='ImageFolder', data_root=MINI, data_prefix=split, ann_file=str(ann),
                     pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')])))


def _brute_force(split, per_class):
    x, y = [], []
    for f, label in _files(split, per_class):
        img = cv2.imread(osp.join(MINI, split, f))[:, :, ::-1].astype(np.float64)  # RGB
        v = ((img - np.array(MEAN)) / np.array(STD)).transpose(2, 0, 1).reshape(-1)
        x.append(v / np.linalg.norm(v))
        y.append(label)
    return np.stack(x), np.array(y)


def _vote(ranked_labels, k):
    counts = np.bincount(ranked_labels[:k], minlength=10)
    tied = np.flatnonzero(counts == counts.max())
    return next(lab for lab in ranked_labels[:k] if lab in tied)  # nearer neighbours win ties


def test_raw_pixel_knn_matches_brute_force(tmp_path):
    pre = MultiViewDataPreprocessor(mean=MEAN, std=STD, bgr_to_rgb=True)
    tr = raw_pixel_features(pre, _loader(tmp_path, 'train', 6))
    te = raw_pixel_features(pre, _loader(tmp_path, 'test', 3))
    xtr, ytr = _brute_force('train', 6)
    xte, yte = _brute_force('test', 3)
    assert tr[0].shape == (60, 3 * 32 * 32)
    np.testing.assert_allclose(tr[0].numpy(), xtr, atol=1e-5)
    np.testing.assert_array_equal(tr[1].numpy(), ytr)
    np.testing.assert_array_equal(te[1].numpy(), yte)
    got = knn_correct(tr[0], tr[1], te[0], te[1], ks=(1, 5))
    order = np.argsort(-(xte @ xtr.T), axis=1, kind='stable')
    for k in (1, 5):
        want = np.array([_vote(ytr[o], k) for o in order]) == yte
        np.testing.assert_array_equal(got[f'{k}-NN'].numpy(), want)
    assert 0 < int(got['1-NN'].sum()) < 30  # a real, non-trivial comparison
