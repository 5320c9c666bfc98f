# Supervised CMSF, ResNet-50, 200 epochs, batch 256, w/s views, 128K bank, k = 10 (authors'
# run_supervised.sh): C = bank entries with the query's ground-truth label (100% purity), the
# constrained MSF term only.
_base_ = [
    '../_base_/models/cmsf_r50.py',
    '../_base_/datasets/imagenet_msf.py',
    '../_base_/schedules/sgd_coslr_200e.py',
    '../_base_/cmsf_runtime.py',
]
model = dict(  # the rest: _base_/models/cmsf_r50.py (128K bank)
    topk=10,
    constrained_selector=dict(type='SupervisedSelector'),
    loss_weights=dict(constrained=1.0, unconstrained=0.0),
)
