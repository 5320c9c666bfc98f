# Shared base of the CMSF demos on the bundled real images (data/cifar10_mini, 3,000 images):
# the MSF demo's small-image ResNet-18, views and bank, on a 4-epoch schedule so that each
# CMSF demo finishes on a 2-core CPU in minutes (KM: epoch 1 unconstrained, clusters from
# epoch 2 on; semi-supervised: the pseudo-labeller is trained at mid-epoch 1). The fidelity
# study (tools/study.py) trains the same configs with its own, longer budget.
_base_ = './msf_r18_cifar10mini_ws.py'
max_epochs = 4
param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_epochs, by_epoch=True, begin=0,
                        end=max_epochs)]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(checkpoint=dict(interval=max_epochs, max_keep_ckpts=1),
                     ranks=dict(type='ConstrainedRankHook', interval=5))
log_processor = dict(window_size=5,
                     mean_pattern=r'.*(loss|time|grad_norm|purity|frac|rank|pseudo_label).*')
