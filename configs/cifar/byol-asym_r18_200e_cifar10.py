# BYOL-asym (k = 1) beside msf_r18_200e_cifar10.py: same recipe, same budget.
_base_ = './msf_r18_200e_cifar10.py'
model = dict(topk=1)
