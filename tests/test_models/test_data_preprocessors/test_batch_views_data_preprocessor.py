"""BatchViewsDataPreprocessor: views made on the batch, per-sample seeded, with clear errors."""
import glob
import os.path as osp

import cv2
import pytest
import torch
from mmengine.structures import BaseDataElement

from mmmsf.models.data_preprocessors import BatchViewsDataPreprocessor
from tests.conftest import MINI

WEAK = dict(size=16, scale=(0.2, 1.0))
STRONG = dict(size=16, scale=(0.2, 1.0), jitter_prob=0.8, brightness=0.4, contrast=0.4,
              saturation=0.4, hue=0.1, gray_prob=0.2)
UNIT = dict(mean=[0, 0, 0], std=[255, 255, 255])  # views in [0, 1]


def _batch(n=12, seeds=None):
    paths = sorted(glob.glob(osp.join(MINI, 'train', '*', '000[0-1].jpg')))[:n]
    imgs = [torch.from_numpy(cv2.imread(p).transpose(2, 0, 1).copy()) for p in paths]
    seeds = seeds if seeds is not None else [100 + i for i in range(len(imgs))]
    return imgs, [BaseDataElement(metainfo=dict(aug_seed=s)) for s in seeds]


def test_identity_view_is_the_normalised_image():
    imgs, samples = _batch()
    ident = dict(size=32, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_prob=0.0)
    pre = BatchViewsDataPreprocessor(views=[ident], mean=[10, 20, 30], std=[2, 3, 4])
    out = pre(dict(inputs=imgs, data_samples=samples), training=True)['inputs'][0]
    rgb = torch.stack(imgs)[:, [2, 1, 0]].float()
    ref = (rgb - torch.tensor([10., 20, 30]).view(1, 3, 1, 1)) / torch.tensor(
        [2., 3, 4]).view(1, 3, 1, 1)
    torch.testing.assert_close(out, ref, atol=1e-3, rtol=0)
    flip = BatchViewsDataPreprocessor(views=[dict(ident, flip_prob=1.0)], mean=[10, 20, 30],
                                      std=[2, 3, 4])
    out = flip(dict(inputs=imgs, data_samples=samples), training=True)['inputs'][0]
    torch.testing.assert_close(out, ref.flip(-1), atol=1e-3, rtol=0)


def test_views_depend_on_the_sample_seed_only():
    imgs, samples = _batch()
    pre = BatchViewsDataPreprocessor(views=[WEAK, STRONG], **UNIT)
    a = pre(dict(inputs=imgs, data_samples=samples), training=True)['inputs']
    assert [tuple(v.shape) for v in a] == [(12, 3, 16, 16)] * 2
    # another batch order and a batch split in two: each sample's views are unchanged
    b = pre(dict(inputs=imgs[::-1], data_samples=samples[::-1]), training=True)['inputs']
    c = pre(dict(inputs=imgs[:5], data_samples=samples[:5]), training=True)['inputs']
    for va, vb, vc in zip(a, b, c):
        assert torch.equal(va, vb.flip(0)) and torch.equal(va[:5], vc)
    # other seeds: other views; the weak view keeps the colours, the strong one does not
    d = pre(dict(inputs=imgs, data_samples=_batch(seeds=[7 + i for i in range(12)])[1]),
            training=True)['inputs']
    assert not torch.equal(a[0], d[0])
    assert a[0].min() >= 0 and a[0].max() <= 1 and a[1].min() >= 0 and a[1].max() <= 1
    many = [200 + i for i in range(60)]
    e = pre(dict(inputs=imgs * 5, data_samples=[BaseDataElement(metainfo=dict(aug_seed=s))
                                                for s in many]), training=True)['inputs']
    gray = [bool((v[0] == v[1]).all() and (v[1] == v[2]).all()) for v in e[1]]
    assert 3 <= sum(gray) <= 25  # p = 0.2 of 60: some, not all, are gray
    assert not any(bool((v[0] == v[1]).all()) for v in e[0])


def test_evaluation_only_normalises():
    imgs, samples = _batch(4)
    pre = BatchViewsDataPreprocessor(views=[WEAK, STRONG], **UNIT)
    out = pre(dict(inputs=imgs, data_samples=samples), training=False)['inputs']
    assert len(out) == 1 and tuple(out[0].shape) == (4, 3, 32, 32)


def test_clear_errors():
    with pytest.raises(KeyError, match=r"unknown keys \['sise'\]"):
        BatchViewsDataPreprocessor(views=[dict(sise=16)])
    with pytest.raises(ValueError, match='scale'):
        BatchViewsDataPreprocessor(views=[dict(scale=(0.5, 0.2))])
    imgs, _ = _batch(2)
    pre = BatchViewsDataPreprocessor(views=[WEAK])
    with pytest.raises(KeyError, match='RecordAugSeed'):
        pre(dict(inputs=imgs, data_samples=[BaseDataElement()] * 2), training=True)
    with pytest.raises(ValueError, match='no MultiView'):
        pre(dict(inputs=[imgs, imgs], data_samples=None), training=True)


def test_size_overrides_every_view():
    imgs, samples = _batch(3)
    pre = BatchViewsDataPreprocessor(views=[WEAK, STRONG], size=8, **UNIT)
    out = pre(dict(inputs=imgs, data_samples=samples), training=True)['inputs']
    assert [tuple(v.shape) for v in out] == [(3, 3, 8, 8)] * 2
