# Label-subset demo: the linear probe of linear_r18_cifar10mini_demo.py trained on 10% of the
# labelled training images (300 images, 30 per class; list written by
# `python tools/make_subset_list.py data/cifar10_mini/train 0.1 ...`, one relative path per
# line, the format of the ImageNet 1% / 10% lists), evaluated on the full test split.
_base_ = './linear_r18_cifar10mini_demo.py'
# batch 64: at 256 the 300 images would give 2 steps per epoch
train_dataloader = dict(
    batch_size=64,
    dataset=dict(ann_file='{{fileDirname}}/subsets/cifar10_mini_10percent.txt'))
linear_cfg = dict(stats_dataloader=dict(
    dataset=dict(ann_file='{{fileDirname}}/subsets/cifar10_mini_10percent.txt')))
