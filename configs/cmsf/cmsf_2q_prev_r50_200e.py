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
model = dict(  # encoders and heads: MSF's (_base_/models/msf_r50.py)
    target_view=0, online_view=1,  # MultiView order: target (weak), online (strong)
    memory_bank=dict(size=128000),
    topk=5,
    constrained_selector=dict(type='TwoQueueSelector', topk_prime=5,
                              second_query='previous_visit'),
    loss_weights=dict(constrained=0.5, unconstrained=0.5),
    embedding_cache=dict(type='EmbeddingCache', placement='auto', dtype='float32'),
)
default_hooks = dict(cache=dict(type='EmbeddingCacheHook'))  # u' of the previous visit
