# Linear probe of a frozen ResNet-50 (MSF paper §3.2, reference CompRess eval_linear.py):
# backbone (eval mode, no gradients) -> L2-normalise -> standardise each dimension with the
# training set's mean/var (computed once, cached) -> Linear(2048, 1000).
model = dict(
    type='LinearProbe',
    backbone=dict(type='ResNet', depth=50),
    num_classes=1000,
    pretrained=None,  # the CHECKPOINT argument of tools/linear_eval.py
    pretrained_prefix='backbone.',  # the online backbone ('target_backbone.': the EMA target)
    standardizer=dict(eps=1e-5),
    data_preprocessor=dict(
        type='MultiViewDataPreprocessor',
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
)
