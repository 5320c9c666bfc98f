"""kNN evaluation of images of several sizes: the demo's evaluation pipelines resize and crop
(as the paper's Resize 256 / CenterCrop 224); a pipeline that does not gets an error naming the
image."""
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.runner import Runner

from mmmsf.apis import load_config
from mmmsf.evaluation.feature_extraction import extract_features
from mmmsf.registry import MODELS
from tests.conftest import ROOT, tiny_msf_cfg


@pytest.fixture
def mixed_sizes(tmp_path):
    rng = np.random.default_rng(0)
    for c, sizes in enumerate([(32, 32), (40, 56), (64, 48)]):
        d = tmp_path / 'test' / f'class{c}'
        d.mkdir(parents=True)
        for i, (h, w) in enumerate([sizes, (32, 32)]):
            cv2.imwrite(str(d / f'{i}.jpg'), (rng.random((h, w, 3)) * 255).astype(np.uint8))
    return tmp_path


def _loader(root, pipeline):
    return Runner.build_dataloader(dict(
        batch_size=6, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='ImageFolder', data_root=str(root), data_prefix='test',
                     pipeline=pipeline)))


def test_demo_eval_pipeline_resizes_and_crops(mixed_sizes):
    cfg = load_config(osp.join(ROOT, 'configs', 'demo', 'msf_r18_cifar10mini_ws.py'))
    model = MODELS.build(tiny_msf_cfg(data_preprocessor=cfg.model.data_preprocessor))
    feats, labels = extract_features(model, _loader(mixed_sizes, cfg.test_pipeline))
    assert feats.shape == (6, 64) and labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.isfinite(feats).all()


def test_pipeline_without_resize_names_the_image(mixed_sizes):
    model = MODELS.build(tiny_msf_cfg())
    loader = _loader(mixed_sizes, [dict(type='LoadImageFromFile'), dict(type='PackInputs')])
    with pytest.raises(ValueError) as e:
        extract_features(model, loader)
    msg = str(e.value)
    assert "class1/0.jpg' is (40, 56) (H, W)" in msg and 'CenterCrop' in msg
