# MSF with ResNet-50 (paper §4), the one model block of MSF, BYOL-asym and CMSF: projection
# 2048-4096-512, predictor 512-4096-512, FIFO bank of 1,024,000 x 512, k = 5, ShuffleBN in the
# target.
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
