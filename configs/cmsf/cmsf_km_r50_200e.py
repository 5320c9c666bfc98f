# CMSF-KM, ResNet-50, 200 epochs, batch 256 (8 x 32), w/s views (CMSF paper Table 2: 72.9 linear,
# 63.2 1-NN, 66.2 20-NN). C = bank entries in the query's k-means cluster; the latest target
# embedding of every image is clustered (faiss, 50,000 clusters, 20 iterations) at each epoch
# end; epoch 1 is unconstrained. `bash tools/dist_train.sh configs/cmsf/cmsf_km_r50_200e.py 8`
_base_ = [
    '../_base_/models/cmsf_r50.py',
    '../_base_/datasets/imagenet_msf.py',
    '../_base_/schedules/sgd_coslr_200e.py',
    '../_base_/cmsf_runtime.py',
]
model = dict(  # the rest: _base_/models/cmsf_r50.py (128K bank, k = 5, weights 0.5 / 0.5)
    constrained_selector=dict(type='KMeansSelector'),
    # 1.28M x 512 float32 = 2.6 GB: pinned CPU memory on GPU runs ('auto', N > bank size)
    embedding_cache=dict(type='EmbeddingCache', placement='auto', dtype='float32'),
)
default_hooks = dict(
    cache=dict(type='EmbeddingCacheHook'),
    kmeans=dict(type='KMeansClusterHook', num_clusters=50000, niter=20, seed=0, gpu='auto',
                max_points_per_centroid=10000000),  # authors' value: no subsampling
)
