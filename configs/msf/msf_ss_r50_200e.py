# MSF s/s: strong augmentation for both target and online views (paper Table 2: 71.4 linear).
_base_ = './msf_r50_200e.py'
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', transforms=[{{_base_.strong_pipeline}}, {{_base_.strong_pipeline}}]),
    dict(type='PackInputs'),
]))
