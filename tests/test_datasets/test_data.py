import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.registry import build_from_cfg

from mmmsf.registry import DATASETS, TRANSFORMS
from tests.conftest import MINI


def make_dataset(root, pipeline=(), **kw):
    return DATASETS.build(dict(type='ImageFolder', data_root=str(root), data_prefix='train',
                               pipeline=list(pipeline), **kw))


def test_image_folder_indices_and_labels(image_folder):
    ds = make_dataset(image_folder, [dict(type='LoadImageFromFile'), dict(type='PackInputs')])
    assert len(ds) == 18 and ds.metainfo['classes'] == ('class0', 'class1', 'class2')
    out = ds[7]
    assert out['inputs'].shape == (3, 24, 24) and out['inputs'].dtype == torch.uint8
    assert out['data_samples'].sample_idx == 7
    assert out['data_samples'].gt_label == 1


def test_file_list_subset_and_missing_file(image_folder, tmp_path):
    lst = tmp_path / 'subset.txt'
    lst.write_text('class2/003.jpg\nclass0/001.jpg\n')
    ds = make_dataset(image_folder, ann_file=str(lst))
    assert [osp.basename(ds.get_data_info(i)['img_path']) for i in range(2)] == \
        ['003.jpg', '001.jpg']
    assert [ds.get_data_info(i)['gt_label'] for i in range(2)] == [2, 0]
    lst.write_text('class2/003.jpg\nclass1/999.jpg\n')
    with pytest.raises(FileNotFoundError, match='999.jpg'):
        make_dataset(image_folder, ann_file=str(lst))


def test_empty_and_missing_dataset(tmp_path):
    (tmp_path / 'train' / 'a').mkdir(parents=True)
    with pytest.raises(ValueError, match='no images found'):
        make_dataset(tmp_path)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        make_dataset(tmp_path / 'nowhere')


def test_missing_and_corrupt_images_raise(image_folder):
    ds = make_dataset(image_folder, [dict(type='LoadImageFromFile'), dict(type='PackInputs')])
    bad = ds.get_data_info(3)['img_path']
    with open(bad, 'wb') as f:
        f.write(b'not a jpeg at all')
    with pytest.raises(IOError, match='corrupt'):
        ds[3]
    import os
    os.remove(ds.get_data_info(4)['img_path'])
    with pytest.raises(IOError, match='missing'):
        ds[4]


def test_multiview_weak_strong_pipelines():
    weak = [dict(type='RandomResizedCrop', size=16, scale=(0.2, 1.0)),
            dict(type='RandomFlip', prob=0.5, direction='horizontal')]
    strong = weak + [
        dict(type='RandomApply', prob=1.0, transforms=[
            dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)]),
        dict(type='RandomGrayscale', prob=1.0, keep_channels=True),
        dict(type='GaussianBlur', sigma_min=0.1, sigma_max=2.0, prob=1.0)]
    mv = TRANSFORMS.build(dict(type='MultiView', transforms=[weak, strong]))
    img = (np.random.default_rng(0).random((40, 30, 3)) * 255).astype(np.uint8)
    out = mv(dict(img=img))
    assert len(out['img']) == 2
    w, s = out['img']
    assert w.shape == s.shape == (16, 16, 3)
    # strong view went through grayscale: equal channels; weak view keeps colour
    assert np.array_equal(s[..., 0], s[..., 1]) and np.array_equal(s[..., 1], s[..., 2])
    assert not np.array_equal(w[..., 0], w[..., 1])


def test_random_resized_crop_scale_range():
    import random
    random.seed(0)
    t = TRANSFORMS.build(dict(type='RandomResizedCrop', size=8, scale=(0.2, 1.0)))
    areas = []
    for _ in range(200):
        top, left, h, w = t.get_params(100, 100)
        assert 0 <= top and top + h <= 100 and 0 <= left and left + w <= 100
        areas.append(h * w / 1e4)
    assert min(areas) >= 0.18 and max(areas) <= 1.0 and np.mean(areas) > 0.4


def test_color_jitter_is_identity_at_zero_strength():
    img = (np.random.default_rng(1).random((8, 8, 3)) * 255).astype(np.uint8)
    t = TRANSFORMS.build(dict(type='ColorJitter'))
    assert np.array_equal(t(dict(img=img.copy()))['img'], img)
    t = TRANSFORMS.build(dict(type='ColorJitter', brightness=0.8))
    assert not np.array_equal(t(dict(img=img.copy()))['img'], img)


def test_adjust_hue_matches_torchvision_bit_for_bit():
    import torchvision.transforms.functional as TF
    from mmmsf.datasets.transforms.color_jitter import adjust_hue
    rng = np.random.default_rng(3)
    for trial in range(60):
        h, w = [(32, 32), (7, 5), (64, 48)][trial % 3]
        img = rng.integers(0, 256, (3, h, w), dtype=np.uint8)
        img[1, :2] = img[0, :2]            # ties between channels (maxc == r == g)
        img[:, -2:] = img[2:3, -2:]        # grey pixels (maxc == minc)
        img[:, :, 0] = 255 * (trial % 2)   # black / white column
        t = torch.from_numpy(img)
        factor = float(rng.uniform(-0.5, 0.5)) if trial > 1 else (-0.5, 0.5)[trial]
        assert torch.equal(adjust_hue(t, factor), TF.adjust_hue(t, factor)), (trial, factor)
    with pytest.raises(ValueError, match='not in'):
        adjust_hue(torch.zeros(3, 2, 2, dtype=torch.uint8), 0.7)


def test_bundled_real_images_present():
    ds = DATASETS.build(dict(type='ImageFolder', data_root=MINI, data_prefix='train'))
    assert len(ds) == 3000 and len(ds.metainfo['classes']) == 10
    test = DATASETS.build(dict(type='ImageFolder', data_root=MINI, data_prefix='test'))
    assert len(test) == 1000
