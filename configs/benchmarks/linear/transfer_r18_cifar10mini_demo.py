# Transfer-evaluation demo: the demo backbone (configs/demo/msf_r18_cifar10mini_ws.py) on the
# bundled data/cifar10_mini (train/test), same protocol as transfer_r50_10datasets.py at 32 px.
#   python tools/transfer_eval.py configs/benchmarks/linear/transfer_r18_cifar10mini_demo.py \
#       work_dirs/demo_msf/epoch_20.pth [--datasets cifar10=/path/to/cifar10-jpg ...]
_base_ = ['../../_base_/models/linear_probe_r50.py']
default_scope = 'mmmsf'
model = dict(
    backbone=dict(type='ResNet', depth=18, stem='small', base_channels=16),
    num_classes=None,
    data_preprocessor=dict(mean=[125.307, 122.961, 113.8575], std=[51.5865, 50.847, 51.255]))
transfer_cfg = dict(
    pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')],
    datasets=[dict(name='cifar10_mini', data_root='data/cifar10_mini')],
    lrs=[0.01, 0.1, 1.0],
    weight_decays=[0.0],
    epochs=30,
    classifier_batch_size=256,
    val_fraction=0.2,
    batch_size=256,
    num_workers=0,
    seed=0,
)
