"""CMSF-KM's clustering: faiss k-means of every image's cached target embedding, each epoch end.

At the end of every epoch (paper §3.1, "CMSF-KM"; 50,000 clusters and 20 iterations for
ImageNet) rank 0 clusters the latest target embedding of every training image -- the model's
:class:`~mmmsf.models.memories.EmbeddingCache` -- with faiss k-means (on the GPU where
faiss-gpu and CUDA are present), assigns each image to its nearest centroid, and broadcasts the
ids to all ranks, which install them in the :class:`~mmmsf.models.selectors.KMeansSelector`. The
next epoch's constrained search uses them; epoch 1 has none and runs unconstrained.

Works in a single process (no ``runner.model.module`` assumption) and in DDP. The ids are model
buffers, so they are in every checkpoint and come back on ``--resume``; the hook runs before
the checkpoint hook, so an epoch-end checkpoint holds the ids computed at that epoch end.
Images without a cached embedding (never seen yet) get id ``-1`` and are unconstrained.
"""
import time
from typing import Optional, Union

import torch
from mmengine.dist import broadcast, get_rank
from mmengine.hooks import Hook

from mmmsf.registry import HOOKS
from mmmsf.utils.knn_search import faiss_kmeans_assign
from mmmsf.utils.misc import get_ori_model


@HOOKS.register_module()
class KMeansClusterHook(Hook):
    """Cluster the embedding cache every ``interval`` epochs and install the ids everywhere.

    Args:
        num_clusters: k of k-means (ImageNet: 50,000).
        niter: k-means iterations (ImageNet: 20).
        seed: faiss's seed (the same seed and data give the same clustering).
        gpu: ``'auto'`` (GPU where faiss-gpu and CUDA exist), True or False.
        max_points_per_centroid: faiss's training subsample cap (None: faiss default).
        interval: every this many epochs.
    """

    priority = 'NORMAL'  # before CheckpointHook (VERY_LOW): the epoch's checkpoint has the ids

    def __init__(self, num_clusters: int, niter: int = 20, seed: int = 0,
                 gpu: Union[bool, str] = 'auto', max_points_per_centroid: Optional[int] = None,
                 interval: int = 1):
        if num_clusters < 1 or niter < 1 or interval < 1:
            raise ValueError('KMeansClusterHook needs num_clusters >= 1, niter >= 1 and '
                             'interval >= 1.')
        if gpu not in ('auto', True, False):
            raise KeyError(f"KMeansClusterHook gpu={gpu!r}: use 'auto', True or False.")
        self.num_clusters, self.niter, self.seed = num_clusters, niter, seed
        self.gpu, self.max_points_per_centroid = gpu, max_points_per_centroid
        self.interval = interval

    @staticmethod
    def _parts(model):
        if not hasattr(model, 'constraint'):
            raise ValueError('KMeansClusterHook needs a CMSF model with '
                             "constrained_selector=dict(type='KMeansSelector').")
        return model.constraint('kmeans', user='KMeansClusterHook')

    def before_run(self, runner) -> None:
        selector, _ = self._parts(get_ori_model(runner.model))
        num_images = len(runner.train_dataloader.dataset)
        if self.num_clusters > num_images:  # found now, not after the first epoch
            raise ValueError(f'KMeansClusterHook num_clusters={self.num_clusters} is more than '
                             f'the {num_images} training images: lower num_clusters (at most '
                             'the number of images).')
        selector.allocate_per_image('cluster_ids', num_images, -1)

    @torch.no_grad()
    def cluster(self, model) -> torch.Tensor:
        """Cluster ``model``'s cache (rank 0), broadcast, install; returns the (N,) ids.

        Call it on every rank: a sharded cache first gathers its written rows on rank 0."""
        selector, cache = self._parts(model)
        ids = torch.full((cache.num_images, ), -1, dtype=torch.long)
        rows, emb = cache.gather_valid_rows(dst=0)  # a sharded cache: every rank's images
        if get_rank() == 0:
            assign = faiss_kmeans_assign(emb.cpu().numpy(), self.num_clusters, self.niter,
                                         self.seed, self.gpu, self.max_points_per_centroid)
            ids[rows.cpu()] = torch.from_numpy(assign)
        broadcast(ids, src=0)
        selector.set_cluster_ids(ids)
        return ids

    def after_train_epoch(self, runner) -> None:
        if not self.every_n_epochs(runner, self.interval):
            return
        t0 = time.time()
        ids = self.cluster(get_ori_model(runner.model))
        seconds = time.time() - t0
        clustered = ids[ids >= 0]
        sizes = torch.bincount(clustered, minlength=self.num_clusters) if clustered.numel() \
            else torch.zeros(self.num_clusters, dtype=torch.long)
        nonempty = int((sizes > 0).sum())
        runner.logger.info(
            f'k-means after epoch {runner.epoch + 1}: {clustered.numel()} images in '
            f'{nonempty}/{self.num_clusters} non-empty clusters (largest {int(sizes.max())}), '
            f'{seconds:.1f} s')
        runner.message_hub.update_scalar('train/kmeans_seconds', seconds)
        runner.message_hub.update_scalar('train/kmeans_nonempty', nonempty)
