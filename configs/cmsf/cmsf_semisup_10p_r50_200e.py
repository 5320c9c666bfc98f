# Semi-supervised CMSF with 10% of ImageNet's labels, ResNet-50, 200 epochs, batch 256, w/s
# views, 128K bank, k = 10 (authors' run_fullprecision.sh). Labelled queries are constrained to
# their label; unlabelled ones to the pseudo-label of an MLP (512-1024-1000, trained on the
# cached target embeddings of the labelled images at mid-epoch and epoch end, 10 epochs, SGD
# lr 0.01) when its confidence is >= 0.85, else unconstrained. Constrained MSF term only.
# The 10% list: one image per line, relative to data/imagenet/train (or bare file names).
_base_ = [
    '../_base_/models/cmsf_r50.py',
    '../_base_/datasets/imagenet_msf.py',
    '../_base_/schedules/sgd_coslr_200e.py',
    '../_base_/cmsf_runtime.py',
]
model = dict(  # the rest: _base_/models/cmsf_r50.py (128K bank)
    topk=10,
    constrained_selector=dict(type='PseudoLabelSelector', num_classes=1000, threshold=0.85,
                              hid_channels=1024),
    loss_weights=dict(constrained=1.0, unconstrained=0.0),
    embedding_cache=dict(type='EmbeddingCache', placement='auto', dtype='float32'),
)
default_hooks = dict(
    cache=dict(type='EmbeddingCacheHook'),
    pseudo_label=dict(type='PseudoLabelHook', labelled_list='data/imagenet/10percent.txt',
                      epochs=10, lr=0.01, momentum=0.9, weight_decay=1e-4, batch_size=256,
                      mid_epoch=True),
)
