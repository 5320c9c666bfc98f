# MSF w/s, ResNet-50, 1M bank, k=5, 200 epochs, batch 256 (paper Table 2: 72.4 linear,
# 62.0 1-NN, 64.9 20-NN). `bash tools/dist_train.sh configs/msf/msf_r50_200e.py 8`
# Data (w/s views: weak target, strong online), schedule (SGD, cosine lr) and runtime (EMA
# momentum 0.99) come from the bases; the model is stated here in full (paper §4).
_base_ = [
    '../_base_/datasets/imagenet_msf.py',
    '../_base_/schedules/sgd_coslr_200e.py',
    '../_base_/default_runtime.py',
]
model = dict(
    type='MSF',
    backbone=dict(type='ResNet', depth=50),
    neck=dict(type='MLPNeck', in_channels=2048, hid_channels=4096, out_channels=512),
    predictor=dict(type='MLPNeck', in_channels=512, hid_channels=4096, out_channels=512),
    memory_bank=dict(type='NNMemoryBank', size=1024000, dim=512),  # FIFO bank, K = 1,024,000
    topk=5,  # k neighbours (k = 1: BYOL-asym)
    selector=dict(type='TopKSelector'),
    loss=dict(type='MeanShiftLoss'),  # Eq. 2
    target_bn='shuffle',  # ShuffleBN in the target encoder
    target_view=0, online_view=1,  # MultiView order of the train pipeline: weak, strong
    data_preprocessor=dict(
        type='MultiViewDataPreprocessor',
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
)
