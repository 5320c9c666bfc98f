# ImageNet 1% labels (MSF paper Table 3): the linear probe trained on the images of the public
# 1% list (SimCLR's 1percent.txt, one file per line), evaluated on the full validation set.
# Put the list at data/imagenet/meta/1percent.txt (relative to data_root).
_base_ = './linear_r50_imagenet.py'
train_dataloader = dict(dataset=dict(ann_file='meta/1percent.txt'))
linear_cfg = dict(stats_dataloader=dict(dataset=dict(ann_file='meta/1percent.txt')))
