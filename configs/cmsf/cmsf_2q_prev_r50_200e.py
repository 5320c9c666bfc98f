# CMSF-2Q as the authors' released code does it, ResNet-50, 200 epochs, batch 256, w/s views,
# 128K bank, k = k' = 5: u' is each image's target embedding from its previous visit (the
# previous epoch: another crop, an older encoder), kept per dataset index; M' holds the
# previous-visit embeddings of M's entries. An image's first visit is unconstrained.
# The paper's reading (a third view): cmsf_2q_r50_200e.py.
_base_ = [
    '../_base_/models/cmsf_r50.py',
    '../_base_/datasets/imagenet_msf.py',
    '../_base_/schedules/sgd_coslr_200e.py',
    '../_base_/default_runtime.py',
]
model = dict(
    memory_bank=dict(size=128000),
    topk=5,
    constrained_selector=dict(type='TwoQueueSelector', topk_prime=5,
                              second_query='previous_visit'),
    loss_weights=dict(constrained=0.5, unconstrained=0.5),
    embedding_cache=dict(type='EmbeddingCache', placement='auto', dtype='float32'),
)
custom_hooks = [
    dict(type='MomentumUpdateHook', momentum=0.99),
    dict(type='NNMemoryBankHook', interval=50),
    dict(type='RandomStateHook'),
    dict(type='EmbeddingCacheHook'),
    dict(type='ConstrainedRankHook', interval=10),
]
log_processor = dict(window_size=50,
                     mean_pattern=r'.*(loss|time|grad_norm|purity|frac|rank|pseudo_label).*')
