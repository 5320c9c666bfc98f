# CMSF with ResNet-50 (CMSF paper §4, authors' code): MSF's encoders (msf_r50.py: projection
# 2048-4096-512, predictor 512-4096-512, ShuffleBN target, w/s views), a 128K bank, k = 5 and
# the self-supervised variants' loss weights (both terms, 0.5 each). Each config of
# configs/cmsf/ states its constrained neighbour selector (model.constrained_selector) and its
# deltas (k = 10 and the constrained term only for supervised and semi-supervised CMSF; the
# embedding cache and a third view where the selector needs them).
_base_ = './msf_r50.py'
model = dict(
    type='CMSF',
    memory_bank=dict(size=128000),
    topk=5,
    loss_weights=dict(constrained=0.5, unconstrained=0.5),
)
