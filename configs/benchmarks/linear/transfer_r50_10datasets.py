# Linear transfer evaluation of a pre-trained ResNet-50 on the paper's 10 datasets (MSF paper
# Table 4): frozen features (Resize 256 / CenterCrop 224, no train-time augmentation), one
# linear layer per dataset on L2-normalised + standardised features, learning rate chosen on a
# validation split (20% of train, stratified), retrained on train+val, scored on test.
#   python tools/transfer_eval.py configs/benchmarks/linear/transfer_r50_10datasets.py CKPT
# Each dataset: data/transfer/<name>/{train,test}/<class>/<image> (prepare them once).
_base_ = ['../../_base_/models/linear_probe_r50.py']
default_scope = 'mmmsf'
model = dict(num_classes=None)  # a frozen feature extractor; one classifier per dataset
transfer_cfg = dict(
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(1 << 20, 256), keep_ratio=True),
        dict(type='CenterCrop', crop_size=224),
        dict(type='PackInputs'),
    ],
    datasets=[
        dict(name='Food101', data_root='data/transfer/food101'),
        dict(name='CIFAR10', data_root='data/transfer/cifar10'),
        dict(name='CIFAR100', data_root='data/transfer/cifar100'),
        dict(name='SUN397', data_root='data/transfer/sun397'),
        dict(name='Cars196', data_root='data/transfer/cars196'),
        dict(name='Aircraft', data_root='data/transfer/aircraft', metric='mean_per_class'),
        dict(name='DTD', data_root='data/transfer/dtd'),
        dict(name='Pets', data_root='data/transfer/pets', metric='mean_per_class'),
        dict(name='Caltech101', data_root='data/transfer/caltech101', metric='mean_per_class'),
        dict(name='Flowers102', data_root='data/transfer/flowers102', metric='mean_per_class'),
    ],
    lrs=[0.001, 0.003, 0.01, 0.03, 0.1, 0.3],  # chosen on the validation split
    weight_decays=[0.0],
    epochs=100,
    classifier_batch_size=256,
    val_fraction=0.2,
    batch_size=64,  # feature extraction
    num_workers=8,
    seed=0,
)
