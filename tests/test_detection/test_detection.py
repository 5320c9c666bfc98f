"""Detection transfer (paper Table 5) through mmdet: configs, initialisation, VOC layout, errors.

The end-to-end runs of tools/train_detection.py and tools/test_detection.py are in
tests/test_detection_e2e.py.
"""
import os
import os.path as osp
import xml.etree.ElementTree as ET

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmmsf.utils.detection_stack import detection_stack_missing

if detection_stack_missing():  # the light install: skip, saying what is missing
    pytest.skip(detection_stack_missing(), allow_module_level=True)

from mmmsf.detection import (CIFAR_TO_VOC, check_normalisation, check_voc_layout,  # noqa: E402
                             check_voc_split, load_detection_config, make_tiny_voc,
                             pretrained_checkpoints, pretraining_normalisation, set_pretrained)
from mmmsf.detection.finetune import _check_detector_checkpoint  # noqa: E402
from tests.conftest import MINI, ROOT  # noqa: E402

DET = osp.join(ROOT, 'configs/benchmarks/detection')
C4 = osp.join(DET, 'faster-rcnn_r50-c4_ms-24k_voc0712.py')
FPN = osp.join(DET, 'faster-rcnn_r50_fpn_ms-24k_voc0712.py')
TINY = osp.join(DET, 'faster-rcnn_r18-c4_tiny-voc_cpu.py')
MSF_R50 = osp.join(ROOT, 'configs/_base_/models/msf_r50.py')
DEMO = osp.join(ROOT, 'configs/demo/msf_r18_cifar10mini_ws.py')


def build_detector(cfg: Config):
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    return MODELS.build(cfg.model)


def save_backbone(path, depth=50, **kw):
    """An extracted mmmsf ResNet backbone (torchvision names), as tools/extract_backbone.py
    writes it, with random weights and non-trivial BN statistics."""
    from mmmsf.models.backbones.resnet import ResNet
    torch.manual_seed(depth)
    net = ResNet(depth=depth, **kw)
    net.init_weights()
    for name, t in net.state_dict().items():
        if name.endswith('running_var'):
            t.copy_(torch.rand_like(t) + 0.5)
        elif t.is_floating_point():
            t.copy_(torch.randn_like(t) * 0.1)
    torch.save(dict(state_dict=net.state_dict(), meta=dict(source='test')), path)
    return net.state_dict()


def assert_resnet_loaded(detector, src, stages_in_backbone=('conv1.', 'bn1.', 'layer1.',
                                                            'layer2.', 'layer3.')):
    """Every backbone tensor and every res5 tensor of ``detector`` equals ``src``'s."""
    n = 0
    for k, v in detector.backbone.state_dict().items():
        assert k.startswith(stages_in_backbone), k
        if k.endswith('num_batches_tracked'):
            continue
        assert torch.equal(v, src[k]), k
        n += 1
    head = detector.roi_head.shared_head.state_dict() if detector.roi_head.with_shared_head \
        else {}
    for k, v in head.items():
        if k.startswith('layer4.') and not k.endswith('num_batches_tracked'):
            assert torch.equal(v, src[k]), k
            n += 1
    expected = [k for k in src if not k.endswith('num_batches_tracked') and not k.startswith('fc.')
                and (k.startswith(stages_in_backbone) or head)]
    assert n == len(expected)
    return n


def test_r50_configs_follow_moco_protocol():
    c4 = load_detection_config(C4)
    bb, head = c4.model.backbone, c4.model.roi_head.shared_head
    for part in (bb, head):
        assert part.norm_cfg.type == 'SyncBN' and part.norm_eval is False
        assert part.style == 'pytorch'
        assert part.init_cfg.type == 'mmmsf.PretrainedResNet'
    assert bb.frozen_stages == -1 and bb.depth == 50 and bb.num_stages == 3
    assert head.type == 'mmmsf.ResLayerExtraNorm' and head.stage == 3
    scales = c4.train_dataloader.dataset.datasets[0].pipeline[2].scales
    assert [s for _, s in scales] == list(range(480, 801, 32))
    assert c4.test_dataloader.dataset.pipeline[1].scale == (1333, 800)
    assert c4.train_cfg.max_iters == 24000 and c4.optim_wrapper.optimizer.lr == 0.02
    assert c4.train_dataloader.batch_size * 8 == 16
    assert [s.ann_file for s in c4.train_dataloader.dataset.datasets] == [
        'VOC2007/ImageSets/Main/trainval.txt', 'VOC2012/ImageSets/Main/trainval.txt']
    assert c4.test_dataloader.dataset.ann_file == 'VOC2007/ImageSets/Main/test.txt'
    assert c4.test_evaluator.type == 'VOCMetric' and len(c4.test_evaluator.iou_thrs) == 10
    fpn = load_detection_config(FPN)
    assert fpn.model.backbone.norm_cfg.type == 'SyncBN' and fpn.model.backbone.frozen_stages == -1
    assert fpn.model.neck.type == 'FPN' and fpn.train_cfg.max_iters == 24000


@pytest.mark.parametrize('path', [C4, FPN, TINY], ids=osp.basename)
def test_preprocessor_matches_pretraining(path):
    """The pitfall: the normaliser must be inside ``model`` and equal MSF's pre-training one."""
    pre = Config.fromfile(MSF_R50).model.data_preprocessor
    det = load_detection_config(path)
    assert 'data_preprocessor' not in {k for k in det.keys() if k != 'model'}
    dp = det.model.data_preprocessor
    assert dp.type == 'DetDataPreprocessor'
    assert list(dp.mean) == list(pre.mean) and list(dp.std) == list(pre.std)
    assert dp.bgr_to_rgb == pre.bgr_to_rgb is True
    # ... and the built detector normalises with exactly these numbers.
    if path == TINY:
        set_pretrained(det, scratch=True)
        model = build_detector(det)
        assert torch.allclose(model.data_preprocessor.mean.flatten(), torch.tensor(pre.mean))
        assert torch.allclose(model.data_preprocessor.std.flatten(), torch.tensor(pre.std))
        assert model.data_preprocessor._channel_conversion


def test_r50_c4_and_fpn_load_every_backbone_and_res5_tensor(tmp_path):
    src = save_backbone(tmp_path / 'r50.pth')
    cfg = load_detection_config(C4)
    assert set_pretrained(cfg, str(tmp_path / 'r50.pth')) == [
        'model.backbone', 'model.roi_head.shared_head']
    det = build_detector(cfg)
    det.init_weights()
    assert assert_resnet_loaded(det, src) == sum(
        1 for k in src if not k.endswith('num_batches_tracked'))
    norm = det.roi_head.shared_head.norm  # the extra norm is new: default initialisation
    assert torch.equal(norm.weight, torch.ones_like(norm.weight))
    cfg = load_detection_config(FPN)
    set_pretrained(cfg, str(tmp_path / 'r50.pth'))
    det = build_detector(cfg)
    det.init_weights()
    assert_resnet_loaded(det, src, ('conv1.', 'bn1.', 'layer1.', 'layer2.', 'layer3.', 'layer4.'))


def test_normalisation_check_reads_the_pretraining_config():
    det = load_detection_config(TINY)
    r50 = Config.fromfile(osp.join(ROOT, 'configs/msf/msf_r50_200e.py'))
    assert pretraining_normalisation(r50.pretty_text)['mean'] == [123.675, 116.28, 103.53]
    assert check_normalisation(det, dict(cfg=r50.pretty_text))['bgr_to_rgb'] is True
    # The CPU demo pre-trains with CIFAR statistics: fine-tuning from it is refused ...
    demo = Config.fromfile(DEMO)
    with pytest.raises(ValueError, match=r'pre-trained with mean=\[125.307'):
        check_normalisation(det, dict(cfg=demo.pretty_text), 'demo.pth')
    # ... unless the detector is told to normalise the same way.
    det.model.data_preprocessor.mean = demo.model.data_preprocessor.mean
    det.model.data_preprocessor.std = demo.model.data_preprocessor.std
    check_normalisation(det, dict(cfg=demo.pretty_text))
    assert check_normalisation(det, dict(source='x')) is None  # an extracted backbone: no cfg


def test_wrong_checkpoints_fail_clearly(tmp_path):
    cfg = load_detection_config(TINY)
    with pytest.raises(ValueError, match='pass --pretrained CKPT'):
        set_pretrained(cfg.copy())
    cases = {
        'unknown.pth': (dict(state_dict={'foo.weight': torch.zeros(3)}),
                        KeyError, 'neither an mmmsf checkpoint'),
        'authors.pth': (dict(state_dict={'encoder_q.module.conv1.weight': torch.zeros(3)}),
                        KeyError, "authors' MSF/CMSF layout"),
        'not_a_checkpoint.pth': (None, ValueError, 'not a readable PyTorch checkpoint'),
    }
    for name, (obj, exc, msg) in cases.items():
        path = str(tmp_path / name)
        if obj is None:
            with open(path, 'w') as f:
                f.write('hello')
        else:
            torch.save(obj, path)
        c = cfg.copy()
        set_pretrained(c, path)
        with pytest.raises(exc, match=msg):
            build_detector(c).init_weights()
    # Another ResNet (the R50 of the paper into the R18 smoke detector), and a small-stem
    # backbone as the CPU demo pre-trains it: shapes are named, with the fix.
    save_backbone(tmp_path / 'r50.pth', depth=50)
    save_backbone(tmp_path / 'small.pth', depth=18, stem='small', base_channels=16)
    for name, msg in (('r50.pth', 'another ResNet'), ('small.pth', "stem='small'")):
        c = cfg.copy()
        set_pretrained(c, str(tmp_path / name))
        with pytest.raises(ValueError, match=msg):
            build_detector(c).init_weights()
    c = cfg.copy()
    set_pretrained(c, str(tmp_path / 'missing.pth'))
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        build_detector(c).init_weights()
    # A detector checkpoint given to the tester must be a detector of this config.
    c = cfg.copy()
    set_pretrained(c, scratch=True)
    det = build_detector(c)
    with pytest.raises(KeyError, match='is not a detector of this config'):
        _check_detector_checkpoint(det, torch.load(tmp_path / 'r50.pth')['state_dict'], 'r50')


def test_tiny_voc_layout_and_clear_errors(tmp_path):
    stats = make_tiny_voc(MINI, str(tmp_path), num_images=(6, 5, 4), canvas=96,
                          obj_size=(24, 40), seed=1)
    assert set(stats) == {'VOC2007/trainval', 'VOC2012/trainval', 'VOC2007/test'}
    root = tmp_path / 'VOCdevkit'
    assert check_voc_split(str(root), 'VOC2012/ImageSets/Main/trainval.txt', 'VOC2012/') == 5
    ids = (root / 'VOC2007/ImageSets/Main/test.txt').read_text().split()
    assert len(ids) == 4 and not set(ids) & set(
        (root / 'VOC2007/ImageSets/Main/trainval.txt').read_text().split())
    # Every box frames the photograph it names: the crop at the box's (1-based, inclusive)
    # coordinates, scaled back to 32 px, is nearest to a CIFAR-10 test image of that class,
    # and the same crop shifted by a quarter of the box matches far worse.
    import cv2
    import numpy as np
    voc_to_cifar = {v: c for c, v in CIFAR_TO_VOC.items()}
    sources = {c: np.stack([cv2.imread(osp.join(MINI, 'test', c, f)).astype(np.float32)
                            for f in sorted(os.listdir(osp.join(MINI, 'test', c)))])
               for c in CIFAR_TO_VOC}

    def best_match(img, x1, y1, x2, y2):
        crop = cv2.resize(img[y1 - 1:y2, x1 - 1:x2], (32, 32), interpolation=cv2.INTER_AREA)
        errs = {c: np.abs(src - crop.astype(np.float32)).mean(axis=(1, 2, 3)).min()
                for c, src in sources.items()}
        return min(errs, key=errs.get), min(errs.values())

    n_boxes = 0
    for i in ids:
        ann = ET.parse(root / 'VOC2007/Annotations' / f'{i}.xml').getroot()
        img = cv2.imread(str(root / 'VOC2007/JPEGImages' / f'{i}.jpg'))
        assert img.shape == (96, 96, 3)
        for obj in ann.iter('object'):
            name = obj.find('name').text
            b = [int(obj.find('bndbox').find(t).text) for t in ('xmin', 'ymin', 'xmax', 'ymax')]
            assert 24 * 0.8 <= b[2] - b[0] + 1 <= 40 * 1.2
            cls, err = best_match(img, *b)
            assert cls == voc_to_cifar[name] and err < 10, (name, cls, err)
            dx, dy = (b[2] - b[0]) // 4, (b[3] - b[1]) // 4
            sx = dx if b[0] + dx <= 96 - (b[2] - b[0]) else -dx  # stay inside the image
            sy = dy if b[1] + dy <= 96 - (b[3] - b[1]) else -dy
            _, shifted = best_match(img, b[0] + sx, b[1] + sy, b[2] + sx, b[3] + sy)
            assert shifted > 2 * err, (err, shifted)
            n_boxes += 1
    assert n_boxes == sum(stats['VOC2007/test'].values())
    # mmdet's VOCDataset reads it as it is.
    from mmdet.datasets import VOCDataset
    ds = VOCDataset(data_root=str(root), ann_file='VOC2007/ImageSets/Main/test.txt',
                    data_prefix=dict(sub_data_root='VOC2007/'), test_mode=True, pipeline=[])
    assert len(ds) == 4 and sum(len(ds[i]['instances']) for i in range(4)) == n_boxes
    # The config check walks ConcatDataset -> VOCDataset and names what is missing.
    cfg = load_detection_config(TINY, data_root=str(root))
    assert check_voc_layout(cfg) == 6 + 5 + 4
    os.remove(root / 'VOC2012/Annotations' / '2012_000003.xml')
    with pytest.raises(FileNotFoundError, match=r'2012_000003\.xml'):
        check_voc_layout(cfg)
    os.rename(root / 'VOC2012', root / 'VOC2012_')
    with pytest.raises(FileNotFoundError, match=r"VOC2012/' is missing"):
        check_voc_layout(cfg)
    os.remove(root / 'VOC2007/ImageSets/Main/test.txt')
    with pytest.raises(FileNotFoundError, match=r'test\.txt'):
        check_voc_layout(cfg, ['test_dataloader'])
    with pytest.raises(FileNotFoundError, match='does not exist'):
        check_voc_layout(load_detection_config(TINY, data_root=str(tmp_path / 'nowhere')))
    assert pretrained_checkpoints(cfg) == {'model.backbone': None,
                                           'model.roi_head.shared_head': None}
