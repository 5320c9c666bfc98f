# BYOL-asym (k = 1) with the CPU-hour MSF recipe and budget, for the paper's first ordering.
_base_ = './msf_r18w16_cpu1h_cifar10-20k.py'
model = dict(topk=1)
