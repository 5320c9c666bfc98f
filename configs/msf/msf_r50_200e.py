# MSF w/s, ResNet-50, 1M bank, k=5, 200 epochs, batch 256 (paper Table 2: 72.4 linear,
# 62.0 1-NN, 64.9 20-NN). `bash tools/dist_train.sh configs/msf/msf_r50_200e.py 8`
_base_ = [
    '../_base_/models/msf_r50.py',
    '../_base_/datasets/imagenet_msf.py',
    '../_base_/schedules/sgd_coslr_200e.py',
    '../_base_/default_runtime.py',
]
