# The CPU-hour CIFAR benchmark (tools/cifar_benchmark.py): MSF w/s, k = 5, on the 20,000 / 2,000
# CIFAR-10 images (--data-root ../shared/data/cifar10-jpg; default: the bundled 3,000 / 1,000).
# What differs from the paper's recipe, and why: configs/cifar/README.md.
_base_ = [
    '../_base_/models/msf_r18_small.py',
    '../_base_/datasets/cifar10_batch_views.py',
    '../_base_/schedules/sgd_coslr_200e.py',
    '../_base_/default_runtime.py',
]
max_epochs = 100
width = 16  # a quarter of ResNet-18's width: 128-d features
model = dict(
    backbone=dict(base_channels=width),
    neck=dict(in_channels=width * 8, hid_channels=512, out_channels=64),
    predictor=dict(in_channels=64, hid_channels=512, out_channels=64),
    memory_bank=dict(size=8192, dim=64),
    topk=5,
    # w/s views of cifar10_batch_views.py at 16 px (kNN embeds the 32 px images)
    data_preprocessor=dict(type='BatchViewsDataPreprocessor',
                           views=[{{_base_.weak_view}}, {{_base_.strong_view}}],
                           size=16))
optim_wrapper = dict(optimizer=dict(lr=0.1, weight_decay=5e-4),
                     paramwise_cfg=dict(custom_keys=dict(predictor=dict(lr_mult=10.0))))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 1, by_epoch=True, begin=1,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=10)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=5, max_keep_ckpts=1),
    ema=dict(momentum=0.99, schedule='cosine', end_momentum=1.0),
)
