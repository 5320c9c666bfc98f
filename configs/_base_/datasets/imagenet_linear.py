# ImageNet linear evaluation data (MSF paper §3.2): standard supervised augmentation for
# training (RandomResizedCrop 224 + flip), Resize 256 / CenterCrop 224 for validation and for
# the standardisation statistics of the training features.
data_root = 'data/imagenet'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', size=224),  # scale (0.08, 1), torchvision's default
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1 << 20, 256), keep_ratio=True),  # short edge -> 256
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32,  # per GPU; 8 GPUs x 32 = 256 (reference); 1 GPU: batch_size=256
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageFolder', data_root=data_root, data_prefix='train',
                 pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageFolder', data_root=data_root, data_prefix='val',
                 pipeline=test_pipeline),
)
val_evaluator = dict(type='TopKAccuracy', topk=(1, 5))
linear_cfg = dict(
    # the training images through the validation transform: the standardisation statistics
    # (and, with --precompute-features, the fixed training features)
    stats_dataloader=dict(
        batch_size=64, num_workers=8, pin_memory=True,
        sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
        collate_fn=dict(type='default_collate'),
        dataset=dict(type='ImageFolder', data_root=data_root, data_prefix='train',
                     pipeline=test_pipeline)),
    precompute_features=False,
)
