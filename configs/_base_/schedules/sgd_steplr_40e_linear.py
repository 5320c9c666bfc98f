# Linear-probe optimisation (MSF paper §3.2): SGD lr 0.01, momentum 0.9, weight decay 1e-4,
# batch 256, 40 epochs, lr x 0.1 at epochs 15 and 30. Only the linear layer has gradients.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[15, 30], gamma=0.1)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=40, val_interval=1)
val_cfg = dict()
auto_scale_lr = dict(base_batch_size=256, enable=False)
