# CPU smoke run of the R50-C4 protocol on the tiny VOC set (python tools/data/make_tiny_voc.py):
# everything of faster-rcnn_r50-c4_ms-24k_voc0712.py (mmdet Faster R-CNN C4, extra norm after
# res5, RGB mean/std, VOCMetric AP50/AP/AP75) except what a 2-core CPU needs: a ResNet-18 C4 of
# width 16 (base_channels; 1/16 of the FLOPs), BN instead of SyncBN (SyncBN needs GPUs), 160 px
# images, anchors 32-128 px, few proposals and RoIs, 8x8 RoIAlign, batch 4, 300 iterations.
_base_ = './faster-rcnn_r50-c4_ms-24k_voc0712.py'

data_root = 'data/cache/tiny_voc/VOCdevkit/'
norm_cfg = dict(type='BN', requires_grad=True)
width = 16
model = dict(
    backbone=dict(depth=18, base_channels=width, norm_cfg=norm_cfg),
    rpn_head=dict(in_channels=width * 4, feat_channels=width * 4,
                  anchor_generator=dict(scales=[2, 4, 8])),
    roi_head=dict(
        shared_head=dict(depth=18, base_channels=width, norm_cfg=norm_cfg),
        bbox_roi_extractor=dict(roi_layer=dict(output_size=8), out_channels=width * 4),
        bbox_head=dict(in_channels=width * 8, roi_feat_size=4)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=100),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=1000, max_per_img=50)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomChoiceResize',
         scales=[(320, 128), (320, 144), (320, 160), (320, 176), (320, 192)], keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(320, 160), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(datasets=[
        dict(type='VOCDataset', data_root=data_root,
             ann_file='VOC2007/ImageSets/Main/trainval.txt',
             data_prefix=dict(sub_data_root='VOC2007/'),
             filter_cfg=dict(filter_empty_gt=True, min_size=32), pipeline=train_pipeline),
        dict(type='VOCDataset', data_root=data_root,
             ann_file='VOC2012/ImageSets/Main/trainval.txt',
             data_prefix=dict(sub_data_root='VOC2012/'),
             filter_cfg=dict(filter_empty_gt=True, min_size=32), pipeline=train_pipeline),
    ]))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iter = 300
train_cfg = dict(max_iters=max_iter, val_interval=max_iter)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=max_iter, by_epoch=False, milestones=[250], gamma=0.1),
]
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=max_iter))
