# MSF w/s, ResNet-50, 1M bank, k=5, 200 epochs, batch 256 (paper Table 2: 72.4 linear,
# 62.0 1-NN, 64.9 20-NN). `bash tools/dist_train.sh configs/msf/msf_r50_200e.py 8`
# The model (paper §4: encoders, 1M bank, k = 5, ShuffleBN) is the one MSF ResNet-50 block,
# _base_/models/msf_r50.py; data (w/s views: weak target, strong online), schedule (SGD, cosine
# lr) and runtime (EMA momentum 0.99) come from the other bases.
_base_ = [
    '../_base_/models/msf_r50.py',
    '../_base_/datasets/imagenet_msf.py',
    '../_base_/schedules/sgd_coslr_200e.py',
    '../_base_/default_runtime.py',
]
