# MSF with a small-image ResNet-18 (3x3 stem, no max-pool) for 32-96 px data.
# Projection and predictor follow the reference rule: hidden = 2 x feat, out = feat / 4.
model = dict(
    type='MSF',
    backbone=dict(type='ResNet', depth=18, stem='small'),
    neck=dict(type='MLPNeck', in_channels=512, hid_channels=1024, out_channels=128),
    predictor=dict(type='MLPNeck', in_channels=128, hid_channels=1024, out_channels=128),
    memory_bank=dict(type='NNMemoryBank', size=4096, dim=128),
    topk=5,
    selector=dict(type='TopKSelector'),
    loss=dict(type='MeanShiftLoss'),
    target_bn='shuffle',
    data_preprocessor=dict(
        type='MultiViewDataPreprocessor',
        mean=[125.307, 122.961, 113.8575], std=[51.5865, 50.847, 51.255], bgr_to_rgb=True),
)
