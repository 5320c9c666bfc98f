# CMSF-2Q as the paper describes it, ResNet-50, 200 epochs, batch 256, w/s views, 128K bank,
# k = k' = 5 (CMSF paper Table 2: 73.0 linear, 63.2 1-NN, 66.4 20-NN): a second bank M', aligned
# with M, holds the target embedding of a third, independently augmented (weak) view of each
# image; C = the M slots of the top-k' neighbours of the query's third view in M'.
# The released code's reading (M' = previous-visit embeddings): cmsf_2q_prev_r50_200e.py.
_base_ = [
    '../_base_/models/cmsf_r50.py',
    '../_base_/datasets/imagenet_msf.py',
    '../_base_/schedules/sgd_coslr_200e.py',
    '../_base_/cmsf_runtime.py',
]
model = dict(  # the rest: _base_/models/cmsf_r50.py (128K bank, k = 5, weights 0.5 / 0.5)
    extra_view=2,  # MultiView order: target (weak), online (strong), third view (weak) for M'
    constrained_selector=dict(type='TwoQueueSelector', topk_prime=5, second_query='third_view'),
)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', transforms=[
        {{_base_.target_pipeline}}, {{_base_.online_pipeline}}, {{_base_.target_pipeline}}]),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
