# CIFAR-10 in ImageFolder layout (train/, test/), MSF's w/s views made batch-wise in the model
# (BatchViewsDataPreprocessor): the loader only decodes each image once, the views are a few
# tensor ops on the whole batch (on the GPU when the model is there). The default data root is
# the bundled data/cifar10_mini (a smoke run on a fresh clone); the benchmarks pass --data-root,
# e.g. ../shared/data/cifar10-jpg (20,000 / 2,000) or a full CIFAR-10 copy (50,000 / 10,000).
# kNN (online and tools/knn_eval.py): the 32 px test pipeline of cifar10_mini_msf.py.
_base_ = './cifar10_mini_msf.py'
view_size = 32
weak_view = dict(size=view_size, scale=(0.2, 1.0), flip_prob=0.5)
strong_view = dict(size=view_size, scale=(0.2, 1.0), flip_prob=0.5, jitter_prob=0.8,
                   brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, gray_prob=0.2)
# The model config pairs this data with
#   model = dict(data_preprocessor=dict(type='BatchViewsDataPreprocessor',
#                                       views=[weak_view, strong_view]))   # w/s: target first
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1 << 20, 32), keep_ratio=True),  # a no-op on CIFAR's 32 px
    dict(type='CenterCrop', crop_size=32),
    dict(type='RecordAugSeed'),
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path', 'aug_seed')),
]
train_dataloader = dict(num_workers=1, dataset=dict(pipeline=train_pipeline))
