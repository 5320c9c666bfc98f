# ImageNet linear evaluation of a pre-trained ResNet-50 (MSF paper Table 2 "Top-1 Linear";
# MSF w/s: 72.4, random init: 5.1).
#   python tools/linear_eval.py configs/benchmarks/linear/linear_r50_imagenet.py CKPT
#   bash tools/dist_linear_eval.sh configs/benchmarks/linear/linear_r50_imagenet.py CKPT 8
_base_ = [
    '../../_base_/models/linear_probe_r50.py',
    '../../_base_/datasets/imagenet_linear.py',
    '../../_base_/schedules/sgd_steplr_40e_linear.py',
    '../../_base_/linear_runtime.py',
]
