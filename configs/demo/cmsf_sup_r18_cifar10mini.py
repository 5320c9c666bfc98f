# Demo: supervised CMSF (C = same label, constrained term only, k = 10) on the bundled real
# images, small-image ResNet-18, CPU-sized schedule.
_base_ = './msf_r18_cifar10mini_ws.py'
model = dict(
    type='CMSF',
    topk=10,
    constrained_selector=dict(type='SupervisedSelector'),
    loss_weights=dict(constrained=1.0, unconstrained=0.0),
)
custom_hooks = [
    dict(type='MomentumUpdateHook', momentum=0.99),
    dict(type='NNMemoryBankHook', interval=5),
    dict(type='RandomStateHook'),
    dict(type='ConstrainedRankHook', interval=5),
]
log_processor = dict(window_size=5,
                     mean_pattern=r'.*(loss|time|grad_norm|purity|frac|rank|pseudo_label).*')
