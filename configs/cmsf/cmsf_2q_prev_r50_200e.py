# CMSF-2Q as the authors' released code does it, ResNet-50, 200 epochs, batch 256, w/s views,
# 128K bank, k = k' = 5: u' is each image's target embedding from its previous visit (the
# previous epoch: another crop, an older encoder), kept per dataset index; M' holds the
# previous-visit embeddings of M's entries. An image's first visit is unconstrained.
# The paper's reading (a third view): cmsf_2q_r50_200e.py.
_base_ = [
    '../_base_/models/cmsf_r50.py',
    '../_base_/datasets/imagenet_msf.py',
    '../_base_/schedules/sgd_coslr_200e.py',
    '../_base_/cmsf_runtime.py',
]
model = dict(  # the rest: _base_/models/cmsf_r50.py (128K bank, k = 5, weights 0.5 / 0.5)
    constrained_selector=dict(type='TwoQueueSelector', topk_prime=5,
                              second_query='previous_visit'),
    embedding_cache=dict(type='EmbeddingCache', placement='auto', dtype='float32'),
)
default_hooks = dict(cache=dict(type='EmbeddingCacheHook'))  # u' of the previous visit
