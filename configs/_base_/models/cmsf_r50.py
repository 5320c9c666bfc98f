# CMSF with ResNet-50 (CMSF paper §4, authors' code): MSF's encoders (msf_r50.py: projection
# 2048-4096-512, predictor 512-4096-512, ShuffleBN target). Each config of configs/cmsf/ states
# its bank, k, constrained neighbour selector (model.constrained_selector) and loss weights.
_base_ = './msf_r50.py'
model = dict(type='CMSF')
