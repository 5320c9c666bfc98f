# Linear evaluation demo on the bundled real images (data/cifar10_mini: 3,000 train / 1,000
# test CIFAR-10 JPEGs) for the backbone of configs/demo/msf_r18_cifar10mini_ws.py (small-image
# ResNet-18, width 16). The paper's protocol at 32 px: RandomResizedCrop 32 + flip for training,
# the unaltered 32 px image for validation; SGD lr 0.01, 40 epochs, x0.1 at 15 and 30.
#   python tools/linear_eval.py configs/benchmarks/linear/linear_r18_cifar10mini_demo.py \
#       work_dirs/demo_msf/epoch_20.pth [--precompute-features]
_base_ = [
    '../../_base_/models/linear_probe_r50.py',
    '../../_base_/schedules/sgd_steplr_40e_linear.py',
    '../../_base_/linear_runtime.py',
]
data_root = 'data/cifar10_mini'
model = dict(
    backbone=dict(type='ResNet', depth=18, stem='small', base_channels=16),
    num_classes=10,
    data_preprocessor=dict(mean=[125.307, 122.961, 113.8575], std=[51.5865, 50.847, 51.255]))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', size=32),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
# Resize the short edge and crop the centre (as the paper's 256 / 224 for ImageNet), so images
# of other sizes evaluate too; a no-op on the 32 px images.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1 << 20, 32), keep_ratio=True),
    dict(type='CenterCrop', crop_size=32),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=256, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageFolder', data_root=data_root, data_prefix='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=256, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageFolder', data_root=data_root, data_prefix='test',
                 pipeline=test_pipeline))
val_evaluator = dict(type='TopKAccuracy', topk=(1, 5))
linear_cfg = dict(
    stats_dataloader=dict(
        batch_size=256, num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
        collate_fn=dict(type='default_collate'),
        dataset=dict(type='ImageFolder', data_root=data_root, data_prefix='train',
                     pipeline=test_pipeline)),
    precompute_features=False)
train_cfg = dict(val_interval=5)
default_hooks = dict(logger=dict(interval=4), checkpoint=dict(interval=40))
