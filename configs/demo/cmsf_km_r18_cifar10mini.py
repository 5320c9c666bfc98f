# Demo: CMSF-KM on the bundled real images (data/cifar10_mini, 3,000 images), small-image
# ResNet-18, 4 epochs (cmsf_base_r18_cifar10mini.py). ~30 images per k-means cluster, as
# 1.28M / 50,000 on ImageNet.
_base_ = './cmsf_base_r18_cifar10mini.py'
model = dict(
    type='CMSF',
    topk=5,
    constrained_selector=dict(type='KMeansSelector'),
    loss_weights=dict(constrained=0.5, unconstrained=0.5),
    embedding_cache=dict(type='EmbeddingCache', placement='auto'),
)
default_hooks = dict(
    cache=dict(type='EmbeddingCacheHook'),
    kmeans=dict(type='KMeansClusterHook', num_clusters=100, niter=20, seed=0),
)
