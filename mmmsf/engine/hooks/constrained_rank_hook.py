"""Histogram of the ranks of CMSF's constrained neighbours (CMSF paper, "Histogram of
constrained samples"), saved every few epochs.

Contract with the model: :class:`~mmmsf.models.algorithms.CMSF` (``rank_stats=True``) calls::

    MessageHub.get_current_instance().update_info(RANKS_INFO_KEY, ranks, resumed=False)

at every training step (``RANKS_INFO_KEY = 'constrained_ranks'``, defined next to the writer in
``mmmsf/models/algorithms/cmsf.py``), where ``ranks`` is a LongTensor (any shape, any device)
holding, for each neighbour picked by the *constrained* search of a *constrained* query, its
1-based rank in the *unconstrained* order of the whole memory bank by similarity to that query
(rank 1 = the nearest entry, i.e. the query itself; rank r = r-1 bank entries are nearer).
Entries <= 0 are ignored (use them for padding or unconstrained queries).

The hook sums the ranks of every step of a recorded epoch (over all ranks of a multi-process
run) and writes ``<work_dir>/<out_dir>/epoch_XXXX.npz`` with ``counts`` (``counts[r]`` = number
of constrained neighbours at rank r), ``epoch`` (1-based) and ``num_steps``;
``tools/analysis/plot_constrained_ranks.py`` draws them.
"""
import os
import os.path as osp

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_world_size, is_main_process
from mmengine.hooks import Hook

from mmmsf.models.algorithms.cmsf import RANKS_INFO_KEY as RANKS_KEY
from mmmsf.registry import HOOKS


@HOOKS.register_module()
class ConstrainedRankHook(Hook):
    """Accumulates the published ``constrained_ranks`` of every ``interval``-th epoch.

    Args:
        interval: record every this many epochs (the first and last epochs are always
            recorded, so the early/late contrast of the paper's figure is always there).
        out_dir: folder under the work_dir.
    """

    priority = 'LOW'

    def __init__(self, interval: int = 10, out_dir: str = 'constrained_ranks'):
        if interval < 1:
            raise ValueError(f'ConstrainedRankHook interval={interval} must be >= 1.')
        self.interval, self.out_dir = interval, out_dir
        self.counts = np.zeros(0, dtype=np.int64)
        self.num_steps = 0
        self.recording = False

    def _records(self, runner) -> bool:
        e = runner.epoch + 1
        return e == 1 or e % self.interval == 0 or e == runner.max_epochs

    def before_train_epoch(self, runner) -> None:
        self.recording = self._records(runner)
        self.counts = np.zeros(0, dtype=np.int64)
        self.num_steps = 0
        runner.message_hub.update_info(RANKS_KEY, None, resumed=False)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        ranks = runner.message_hub.get_info(RANKS_KEY)
        if ranks is None:
            return
        runner.message_hub.update_info(RANKS_KEY, None, resumed=False)  # count each step once
        if not self.recording:
            return
        r = torch.as_tensor(ranks).detach().reshape(-1).long().cpu()
        r = r[r > 0].numpy()
        if r.size:
            c = np.bincount(r)
            if len(c) > len(self.counts):
                self.counts = np.pad(self.counts, (0, len(c) - len(self.counts)))
            self.counts[:len(c)] += c
        self.num_steps += 1

    def after_train_epoch(self, runner) -> None:
        if not self.recording:
            return
        counts, steps = self.counts, self.num_steps
        if get_world_size() > 1:
            parts = all_gather_object((counts, steps))
            size = max(len(c) for c, _ in parts)
            counts = sum(np.pad(c, (0, size - len(c))) for c, _ in parts)
            steps = sum(s for _, s in parts)
        if not is_main_process():
            return
        if steps == 0:
            runner.logger.warning(
                f"ConstrainedRankHook: no step of epoch {runner.epoch + 1} published "
                f"'{RANKS_KEY}' (is the model a CMSF with a constrained selector?); nothing "
                'saved.')
            return
        folder = osp.join(runner.work_dir, self.out_dir)
        os.makedirs(folder, exist_ok=True)
        path = osp.join(folder, f'epoch_{runner.epoch + 1:04d}.npz')
        np.savez(path, counts=counts, epoch=np.array(runner.epoch + 1),
                 num_steps=np.array(steps))
        runner.logger.info(f'constrained-neighbour ranks of epoch {runner.epoch + 1}: {path}')
