# The bundled real-image set (data/cifar10_mini: 3,000 train / 1,000 test CIFAR-10 JPEGs),
# 32 px views. Blur is left out at 32 px (as for CIFAR in SimCLR); the rest is the reference.
data_root = 'data/cifar10_mini'
weak_pipeline = [
    dict(type='RandomResizedCrop', size=32, scale=(0.2, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
]
strong_pipeline = [
    dict(type='RandomResizedCrop', size=32, scale=(0.2, 1.0)),
    dict(type='RandomApply', prob=0.8, transforms=[
        dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)]),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
         channel_weights=(0.114, 0.587, 0.299)),
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
    batch_size=128,
    num_workers=2,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='ResumableSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageFolder', data_root=data_root, data_prefix='train',
                 pipeline=train_pipeline),
)
# Resize the short edge and crop the centre (as the paper's 256 / 224 for ImageNet), so images
# of other sizes evaluate too; a no-op on the 32 px images.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1 << 20, 32), keep_ratio=True),
    dict(type='CenterCrop', crop_size=32),
    dict(type='PackInputs'),
]
knn_train_dataloader = dict(
    batch_size=256, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ImageFolder', data_root=data_root, data_prefix='train',
                 pipeline=test_pipeline))
knn_test_dataloader = dict(
    batch_size=256, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ImageFolder', data_root=data_root, data_prefix='test',
                 pipeline=test_pipeline))
knn_cfg = dict(ks=(1, 20), weighted=False)
# Online kNN validation during pre-training (mmmsf.engine.runner.KNNValLoop): every
# train_cfg.val_interval epochs the frozen online backbone embeds the memory set
# (knn_train_dataloader) and the query set (val_dataloader) and logs knn/top1@1, knn/top1@20,
# the numbers tools/knn_eval.py prints for that epoch's checkpoint. Off: tools/train.py
# --no-validate.
val_dataloader = dict(
    batch_size=256, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ImageFolder', data_root=data_root, data_prefix='test',
                 pipeline=test_pipeline))
val_evaluator = dict(type='KNNAccuracy', ks=knn_cfg['ks'], weighted=knn_cfg['weighted'])
val_cfg = dict(type='KNNValLoop')
