# Faster R-CNN R50-C4 fine-tuned on VOC07+12 from an mmmsf checkpoint (paper Table 5; MoCo's
# protocol): SyncBN in the backbone and in the res5 shared head, nothing frozen
# (frozen_stages=-1), BN statistics updated (norm_eval=False), an extra norm after res5, and
# the pre-training's RGB mean/std in the detector's own data_preprocessor.
#   bash tools/dist_train_detection.sh THIS_CONFIG 8 --pretrained CKPT
#   python tools/test_detection.py THIS_CONFIG work_dirs/.../iter_24000.pth
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50-caffe-c4.py',
    './_base_/voc0712_ms-24k.py',
]
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    # Must sit inside `model` and equal the pre-training normalisation (mmdet's C4 base is
    # caffe-style BGR with std 1; tools/train_detection.py checks it against the checkpoint).
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(  # stem + res2..res4 (num_stages=3, stride 16 output)
        style='pytorch',
        frozen_stages=-1,
        norm_cfg=norm_cfg,
        norm_eval=False,
        init_cfg=dict(type='mmmsf.PretrainedResNet', checkpoint=None)),  # --pretrained
    roi_head=dict(
        shared_head=dict(  # res5 on each RoI, then SyncBN (detectron2's Res5ROIHeadsExtraNorm)
            type='mmmsf.ResLayerExtraNorm',
            style='pytorch',
            norm_cfg=norm_cfg,
            norm_eval=False,
            init_cfg=dict(type='mmmsf.PretrainedResNet', checkpoint=None)),
        bbox_head=dict(num_classes=20)))
