"""Saves what the paper's qualitative figures need, every few epochs of pre-training.

* MSF Fig. 2: the nearest neighbours of fixed query images at each epoch;
* MSF Table 2 (right): the L2-normalised embeddings of images of a few classes at each epoch,
  for t-SNE.

Both come from one fixed, seeded pool of images (default: 2,000 images of the kNN training set,
test pipeline): every ``interval`` epochs (and once before training, "epoch 0") the hook embeds
the pool with the current model and writes ``<work_dir>/<out_dir>/epoch_XXXX.npz``:

============== ==========================================================================
``epoch``       completed epochs (0 = initialisation)
``pool_index``  (P,) dataset indices of the pool, ascending
``pool_label``  (P,) their labels; ``pool_path`` (P,) their image files
``classes``     class names of the dataset (by label)
``embedding``   (P, D) float16 L2-normalised embeddings (``save_embeddings=True``)
``query_pos``   (Q,) positions in the pool of the fixed queries
``nn_pos``      (Q, k) positions in the pool of their k nearest neighbours (self excluded)
``nn_sim``      (Q, k) cosine similarities of those neighbours
============== ==========================================================================
"""
import copy
import functools
import os
import os.path as osp
from typing import Optional

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from mmmsf.evaluation.feature_extraction import embed_batch
from mmmsf.registry import HOOKS
from mmmsf.utils.misc import get_ori_model


@HOOKS.register_module()
class NeighbourSnapshotHook(Hook):
    """Nearest neighbours of fixed queries and embeddings of a fixed pool, every few epochs.

    Args:
        interval: every this many epochs (the last epoch is always saved).
        dataloader: images to draw the pool from (default: the config's
            ``knn_train_dataloader``, i.e. training images with the test pipeline).
        pool_size: number of pool images (the neighbours are searched among them).
        num_queries: number of fixed query images (drawn from the pool).
        k: neighbours saved per query.
        embedding: ``'backbone'`` (pooled online-backbone feature, what kNN uses) or
            ``'target'`` (the target projection ``u`` that the memory bank holds).
        seed: seed of the pool and query draw (the same images at every epoch and on resume).
        save_embeddings: also store the pool embeddings (for t-SNE).
        before_train: also snapshot the initialisation (epoch 0).
    """

    priority = 'LOW'

    def __init__(self, interval: int = 1, dataloader: Optional[dict] = None,
                 pool_size: int = 2000, num_queries: int = 8, k: int = 8,
                 embedding: str = 'backbone', seed: int = 0, out_dir: str = 'snapshots',
                 save_embeddings: bool = True, before_train: bool = True):
        if embedding not in ('backbone', 'target'):
            raise KeyError(f"NeighbourSnapshotHook embedding={embedding!r}: 'backbone' or "
                           "'target'.")
        if interval < 1 or pool_size < 2 or num_queries < 1 or k < 1:
            raise ValueError('NeighbourSnapshotHook needs interval >= 1, pool_size >= 2, '
                             'num_queries >= 1 and k >= 1.')
        self.interval, self.loader_cfg = interval, dataloader
        self.pool_size, self.num_queries, self.k = pool_size, num_queries, k
        self.embedding, self.seed, self.out_dir = embedding, seed, out_dir
        self.save_embeddings, self.snapshot_before_train = save_embeddings, before_train
        self._loader = None

    # ------------------------------------------------------------------ schedule
    def before_train(self, runner) -> None:
        if self.snapshot_before_train and runner.epoch == 0 and runner.iter == 0:
            self.snapshot(runner, 0)

    def after_train_epoch(self, runner) -> None:
        if self.every_n_epochs(runner, self.interval) or self.is_last_train_epoch(runner):
            self.snapshot(runner, runner.epoch + 1)

    # ------------------------------------------------------------------ work
    def _pool_loader(self, runner):
        if self._loader is not None:
            return self._loader
        from mmengine.runner import Runner
        from torch.utils.data import DataLoader, Subset
        cfg = self.loader_cfg or runner.cfg.get('knn_train_dataloader')
        if cfg is None:
            raise KeyError('NeighbourSnapshotHook needs images: set its dataloader or the '
                           "config's knn_train_dataloader.")
        cfg = copy.deepcopy(cfg)
        cfg['sampler'] = dict(type='DefaultSampler', shuffle=False, round_up=False, seed=0)
        base = Runner.build_dataloader(cfg, seed=0)  # a seed draws no global random number
        n = len(base.dataset)
        if n < 2:
            raise ValueError('NeighbourSnapshotHook needs at least 2 images.')
        rng = np.random.default_rng(self.seed)
        pool = np.sort(rng.choice(n, size=min(self.pool_size, n), replace=False))
        self.query_pos = np.sort(rng.choice(len(pool), size=min(self.num_queries, len(pool)),
                                            replace=False))
        self.pool_index = pool
        # the dataset items carry their dataset index as sample_idx, so order is checkable
        self._loader = DataLoader(Subset(base.dataset, pool.tolist()), batch_size=base.batch_size,
                                  shuffle=False, num_workers=base.num_workers,
                                  collate_fn=base.collate_fn)
        ds = base.dataset
        self.pool_label = np.array([ds.get_data_info(int(i)).get('gt_label', -1) for i in pool])
        self.pool_path = np.array([ds.get_data_info(int(i)).get('img_path', '') for i in pool])
        self.classes = np.array([str(c) for c in (getattr(ds, 'metainfo', {}) or {}).get(
            'classes', ()) or ()])
        return self._loader

    def embed_pool(self, model, loader) -> torch.Tensor:
        """(P, D) L2-normalised embeddings of the pool (model in eval mode, no collectives),
        each batch by :func:`~mmmsf.evaluation.feature_extraction.embed_batch` with the model's
        ``embed(x, which)`` (already L2-normalised, so not normalised again)."""
        was_training = model.training
        model.eval()
        feature_fn = functools.partial(model.embed, which=self.embedding)
        feats, idx = [], []
        for batch in loader:
            f, _, i = embed_batch(model, batch, normalize=False, feature_fn=feature_fn)
            feats.append(f)
            idx += i.tolist()
        model.train(was_training)
        if idx != self.pool_index.tolist():
            raise RuntimeError('NeighbourSnapshotHook: pool images came back out of order.')
        return torch.cat(feats)

    def snapshot(self, runner, epoch: int) -> Optional[str]:
        """Embed the pool and save the neighbours of the queries (rank 0 writes)."""
        model = get_ori_model(runner.model)
        emb = self.embed_pool(model, self._pool_loader(runner))
        q = torch.as_tensor(self.query_pos)
        sims = emb[q] @ emb.T
        sims[torch.arange(len(q)), q] = -float('inf')  # a query is not its own neighbour
        k = min(self.k, emb.shape[0] - 1)
        nn_sim, nn_pos = sims.topk(k, dim=1)
        if not is_main_process():
            return None
        folder = osp.join(runner.work_dir, self.out_dir)
        os.makedirs(folder, exist_ok=True)
        path = osp.join(folder, f'epoch_{epoch:04d}.npz')
        arrays = dict(epoch=np.array(epoch), pool_index=self.pool_index,
                      pool_label=self.pool_label, pool_path=self.pool_path,
                      query_pos=self.query_pos, nn_pos=nn_pos.numpy(), nn_sim=nn_sim.numpy(),
                      classes=self.classes, embedding_type=np.array(self.embedding))
        if self.save_embeddings:
            arrays['embedding'] = emb.numpy().astype(np.float16)
        np.savez(path, **arrays)
        runner.logger.info(f'neighbour snapshot of epoch {epoch}: {path}')
        return path
