# Demo: CMSF-2Q, the released code's reading (u' = the image's previous-visit target embedding),
# on the bundled real images, small-image ResNet-18, 4 epochs (cmsf_base_r18_cifar10mini.py);
# k = k' = 5.
_base_ = './cmsf_base_r18_cifar10mini.py'
model = dict(
    type='CMSF',
    topk=5,
    constrained_selector=dict(type='TwoQueueSelector', topk_prime=5,
                              second_query='previous_visit'),
    loss_weights=dict(constrained=0.5, unconstrained=0.5),
    embedding_cache=dict(type='EmbeddingCache', placement='auto'),
)
default_hooks = dict(cache=dict(type='EmbeddingCacheHook'))
