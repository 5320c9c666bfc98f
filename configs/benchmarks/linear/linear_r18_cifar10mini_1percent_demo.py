# Label-subset demo: 1% of the labelled training images of data/cifar10_mini (30 images,
# 3 per class), the ImageNet-1% protocol in miniature.
_base_ = './linear_r18_cifar10mini_demo.py'
# batch 32: at 256 the 30 images would give 1 step per epoch
train_dataloader = dict(
    batch_size=32,
    dataset=dict(ann_file='{{fileDirname}}/subsets/cifar10_mini_1percent.txt'))
linear_cfg = dict(stats_dataloader=dict(
    dataset=dict(ann_file='{{fileDirname}}/subsets/cifar10_mini_1percent.txt')))
