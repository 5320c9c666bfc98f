# Faster R-CNN R50-FPN on VOC07+12 from an mmmsf checkpoint: the C4 protocol's data, schedule
# and metrics with mmdet's FPN detector; all four ResNet stages (res2..res5) are in the
# backbone, SyncBN, nothing frozen, BN statistics updated, pre-training RGB mean/std.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    './_base_/voc0712_ms-24k.py',
]
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        style='pytorch',
        frozen_stages=-1,
        norm_cfg=norm_cfg,
        norm_eval=False,
        init_cfg=dict(type='mmmsf.PretrainedResNet', checkpoint=None)),  # --pretrained
    roi_head=dict(bbox_head=dict(num_classes=20)))
