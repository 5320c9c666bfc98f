# Supervised CMSF, ResNet-50, 200 epochs, batch 256, w/s views, 128K bank, k = 10 (authors'
# run_supervised.sh): C = bank entries with the query's ground-truth label (100% purity), the
# constrained MSF term only.
_base_ = [
    '../_base_/models/cmsf_r50.py',
    '../_base_/datasets/imagenet_msf.py',
    '../_base_/schedules/sgd_coslr_200e.py',
    '../_base_/default_runtime.py',
]
model = dict(
    memory_bank=dict(size=128000),
    topk=10,
    constrained_selector=dict(type='SupervisedSelector'),
    loss_weights=dict(constrained=1.0, unconstrained=0.0),
)
custom_hooks = [
    dict(type='MomentumUpdateHook', momentum=0.99),
    dict(type='NNMemoryBankHook', interval=50),
    dict(type='RandomStateHook'),
    dict(type='ConstrainedRankHook', interval=10),
]
log_processor = dict(window_size=50,
                     mean_pattern=r'.*(loss|time|grad_norm|purity|frac|rank|pseudo_label).*')
