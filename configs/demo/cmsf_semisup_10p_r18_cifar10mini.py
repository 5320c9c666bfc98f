# Demo: semi-supervised CMSF with 10% labels (30 images per class, listed in
# data/cifar10_mini/labelled_10percent.txt) on the bundled real images, small-image ResNet-18,
# 4 epochs (cmsf_base_r18_cifar10mini.py); pseudo-labeller 64-1024-10, threshold 0.85,
# k = 10.
_base_ = './cmsf_base_r18_cifar10mini.py'
model = dict(
    type='CMSF',
    topk=10,
    constrained_selector=dict(type='PseudoLabelSelector', num_classes=10, threshold=0.85,
                              hid_channels=1024),
    loss_weights=dict(constrained=1.0, unconstrained=0.0),
    embedding_cache=dict(type='EmbeddingCache', placement='auto'),
)
default_hooks = dict(
    cache=dict(type='EmbeddingCacheHook'),
    pseudo_label=dict(type='PseudoLabelHook',
                      labelled_list='data/cifar10_mini/labelled_10percent.txt', epochs=10,
                      lr=0.01, momentum=0.9, weight_decay=1e-4, batch_size=256,
                      mid_epoch=True),
)
