# MSF reference optimisation: SGD (momentum 0.9, wd 1e-4 on all parameters), batch 256,
# lr 0.05, cosine decay per epoch, no warm-up, 200 epochs.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=200, by_epoch=True, begin=0, end=200)]
# val_interval: online kNN validation every 10 epochs (and after the last one)
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=200, val_interval=10)
auto_scale_lr = dict(base_batch_size=256, enable=False)
