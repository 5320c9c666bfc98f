# Demo: supervised CMSF (C = same label, constrained term only, k = 10) on the bundled real
# images, small-image ResNet-18, 4 epochs (cmsf_base_r18_cifar10mini.py).
_base_ = './cmsf_base_r18_cifar10mini.py'
model = dict(
    type='CMSF',
    topk=10,
    constrained_selector=dict(type='SupervisedSelector'),
    loss_weights=dict(constrained=1.0, unconstrained=0.0),
)
