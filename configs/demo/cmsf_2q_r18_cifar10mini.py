# Demo: CMSF-2Q, the paper's reading (a third, weak view fills the second bank M'), on the
# bundled real images, small-image ResNet-18, 4 epochs (cmsf_base_r18_cifar10mini.py);
# k = k' = 5.
_base_ = './cmsf_base_r18_cifar10mini.py'
model = dict(
    type='CMSF',
    topk=5,
    constrained_selector=dict(type='TwoQueueSelector', topk_prime=5, second_query='third_view'),
    extra_view=2,
    loss_weights=dict(constrained=0.5, unconstrained=0.5),
)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', transforms=[
        {{_base_.target_pipeline}}, {{_base_.online_pipeline}}, {{_base_.target_pipeline}}]),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
