# Demo: MSF w/s on the bundled real images (data/cifar10_mini), small-image ResNet-18,
# CPU-sized schedule. `bash tools/demo.sh` trains it and compares kNN accuracy with random init
# and raw pixels. Budget: <= 10 min of training on the slower 2-core machine (1.5 s per step of
# 128 images there): 17 epochs x 23 steps = 391 steps. k = 5, the paper's MSF, so that the
# purity of the neighbours (Fig. 4) is logged and plotted; at this budget k = 1 (BYOL-asym)
# scored higher in both side-by-side probes (docs/demo_probes.md). Whether mean shift beats
# raw pixels is the CPU-hour benchmark's question (configs/cifar/README.md).
_base_ = [
    '../_base_/models/msf_r18_small.py',
    '../_base_/datasets/cifar10_mini_msf.py',
    '../_base_/schedules/sgd_coslr_200e.py',
    '../_base_/default_runtime.py',
]
max_epochs = 17
model = dict(backbone=dict(base_channels=16),  # a quarter of ResNet-18's width: CPU-sized
             neck=dict(in_channels=128, hid_channels=512, out_channels=64),
             predictor=dict(in_channels=64, hid_channels=512, out_channels=64),
             memory_bank=dict(size=2048, dim=64), topk=5)
optim_wrapper = dict(optimizer=dict(lr=0.05))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_epochs, by_epoch=True, begin=0,
                        end=max_epochs)]
train_cfg = dict(max_epochs=max_epochs, val_interval=1)  # online kNN every epoch
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=5, max_keep_ckpts=1),
                     bank=dict(interval=5))
