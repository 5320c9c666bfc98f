# CMSF with ResNet-50 (CMSF paper §4, authors' code): MSF's encoders (projection 2048-4096-512,
# predictor 512-4096-512, ShuffleBN target) and a 128K bank; each config of configs/cmsf/ adds
# its constrained neighbour selector (model.constrained_selector). Self-supervised variants
# average the constrained and unconstrained MSF terms.
_base_ = './msf_r50.py'
model = dict(
    type='CMSF',
    memory_bank=dict(size=128000),
    topk=5,
    loss_weights=dict(constrained=0.5, unconstrained=0.5),
)
