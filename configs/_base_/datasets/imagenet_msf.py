# ImageNet pre-training views of the reference code (paper §4 "Implementation details").
# `view_order` / target-online naming: "w/s" = weak target view, strong online view.
data_root = 'data/imagenet'
weak_pipeline = [
    dict(type='RandomResizedCrop', size=224, scale=(0.2, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
]
strong_pipeline = [
    dict(type='RandomResizedCrop', size=224, scale=(0.2, 1.0)),
    dict(type='RandomApply', prob=0.8, transforms=[
        dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)]),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
         channel_weights=(0.114, 0.587, 0.299)),
    dict(type='GaussianBlur', sigma_min=0.1, sigma_max=2.0, prob=0.5),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
]
target_pipeline = weak_pipeline   # w/s
online_pipeline = strong_pipeline
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', transforms=[target_pipeline, online_pipeline]),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32,  # per GPU; 8 GPUs x 32 = 256 (reference)
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,
    sampler=dict(type='ResumableSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageFolder', data_root=data_root, data_prefix='train',
                 pipeline=train_pipeline),
)
# kNN evaluation (paper Table 2): Resize 256 / CenterCrop 224 for both splits.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    # mmcv's Resize with keep_ratio: short edge -> 256 (the long-edge bound never binds)
    dict(type='Resize', scale=(1 << 20, 256), keep_ratio=True),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
knn_train_dataloader = dict(
    batch_size=256, num_workers=8, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ImageFolder', data_root=data_root, data_prefix='train',
                 pipeline=test_pipeline))
knn_test_dataloader = dict(
    batch_size=256, num_workers=8, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ImageFolder', data_root=data_root, data_prefix='val',
                 pipeline=test_pipeline))
knn_cfg = dict(ks=(1, 20), weighted=False)
# Online kNN validation during pre-training (mmmsf.engine.runner.KNNValLoop, every
# train_cfg.val_interval epochs): the val split votes among a class-balanced 10% of the
# training images (128 per class), searched exactly with faiss (on the GPU where present).
# Off: tools/train.py --no-validate.
val_dataloader = dict(
    batch_size=256, num_workers=8, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ImageFolder', data_root=data_root, data_prefix='val',
                 pipeline=test_pipeline))
val_evaluator = dict(type='KNNAccuracy', ks=knn_cfg['ks'], weighted=knn_cfg['weighted'])
val_cfg = dict(type='KNNValLoop', memory_subset=dict(fraction=0.1, seed=0))
