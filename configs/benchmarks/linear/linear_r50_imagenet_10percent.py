# ImageNet 10% labels (MSF paper Table 3): the linear probe trained on the images of the public
# 10% list (SimCLR's 10percent.txt), evaluated on the full validation set.
# Put the list at data/imagenet/meta/10percent.txt (relative to data_root).
_base_ = './linear_r50_imagenet.py'
train_dataloader = dict(dataset=dict(ann_file='meta/10percent.txt'))
linear_cfg = dict(stats_dataloader=dict(dataset=dict(ann_file='meta/10percent.txt')))
