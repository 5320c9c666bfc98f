# MSF w/w: weak augmentation for both views (paper Table 2: 66.3 linear; BYOL w/w collapses).
_base_ = './msf_r50_200e.py'
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', transforms=[{{_base_.weak_pipeline}}, {{_base_.weak_pipeline}}]),
    dict(type='PackInputs'),
]))
