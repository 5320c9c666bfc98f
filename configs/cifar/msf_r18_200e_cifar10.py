# GPU form of the CIFAR benchmark: MSF w/s, k = 5, full-width small-image ResNet-18, 32 px views
# made on the GPU (BatchViewsDataPreprocessor), batch 256, 200 epochs of the full CIFAR-10
# (--data-root: an ImageFolder copy with train/ = 50,000 and test/ = 10,000 images):
#   python tools/cifar_benchmark.py --data-root DIR \
#       --configs configs/cifar/msf_r18_200e_cifar10.py configs/cifar/byol-asym_r18_200e_cifar10.py
# The CPU-hour recipe (msf_r18w16_cpu1h_cifar10-20k.py) at full width and 32 px, lr scaled
# linearly with the batch. Not yet run on a GPU (docs/gpu_selfcheck.md).
_base_ = './msf_r18w16_cpu1h_cifar10-20k.py'
max_epochs = 200
width = 64
model = dict(
    backbone=dict(base_channels=width),
    neck=dict(in_channels=width * 8, hid_channels=1024, out_channels=128),
    predictor=dict(in_channels=128, hid_channels=1024, out_channels=128),
    memory_bank=dict(size=16384, dim=128),
    data_preprocessor=dict(size=32))
train_dataloader = dict(batch_size=256, num_workers=8)
optim_wrapper = dict(optimizer=dict(lr=0.2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 1, by_epoch=True, begin=1,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=20)
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=1))
