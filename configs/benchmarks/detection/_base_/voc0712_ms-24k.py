# PASCAL VOC with MoCo's detection protocol (the MSF paper's Table 5): train on VOC2007 + VOC2012
# trainval, test on VOC2007 test; multi-scale training (shorter side 480..800 step 32, longer
# <= 1333), test at 800; 24k iterations, batch 16 (8 GPUs x 2), SGD lr 0.02, momentum 0.9,
# wd 1e-4, linear warm-up over 100 iterations, lr x0.1 at 18k and 22k.
# Metrics: AP50, AP (mean over IoU .50:.05:.95) and AP75 with VOC07's 11-point AP, as
# detectron2's VOC evaluator computes them for MoCo -- all from mmdet's VOCMetric.
_base_ = [
    'mmdet::_base_/datasets/voc0712.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmmsf.detection'], allow_failed_imports=False)

data_root = 'data/VOCdevkit/'
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomChoiceResize',
         scales=[(1333, 480), (1333, 512), (1333, 544), (1333, 576), (1333, 608), (1333, 640),
                 (1333, 672), (1333, 704), (1333, 736), (1333, 768), (1333, 800)],
         keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),  # after Resize: boxes stay in image pixels
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2,  # x 8 GPUs = 16
    num_workers=2,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        ignore_keys=['dataset_type'],  # VOC2007 / VOC2012 metainfo differ only in this key
        datasets=[
            dict(type='VOCDataset', data_root=data_root,
                 ann_file='VOC2007/ImageSets/Main/trainval.txt',
                 data_prefix=dict(sub_data_root='VOC2007/'),
                 filter_cfg=dict(filter_empty_gt=True, min_size=32), pipeline=train_pipeline),
            dict(type='VOCDataset', data_root=data_root,
                 ann_file='VOC2012/ImageSets/Main/trainval.txt',
                 data_prefix=dict(sub_data_root='VOC2012/'),
                 filter_cfg=dict(filter_empty_gt=True, min_size=32), pipeline=train_pipeline),
        ]))
val_dataloader = dict(dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

iou_thrs = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
val_evaluator = dict(type='VOCMetric', metric='mAP', eval_mode='11points', iou_thrs=iou_thrs)
test_evaluator = val_evaluator

max_iter = 24000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iter, val_interval=max_iter)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=max_iter, by_epoch=False, milestones=[18000, 22000],
         gamma=0.1),
]
optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4))
auto_scale_lr = dict(enable=False, base_batch_size=16)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=4000, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
