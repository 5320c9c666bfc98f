"""Test hook for the resume tests: every rank saves which images it trained in which epoch
(imported by the generated configs through ``custom_imports``, inside the launched processes)."""
import os.path as osp

import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook

from mmmsf.registry import HOOKS


@HOOKS.register_module(force=True)
class SampleRecordHook(Hook):
    """``<out_dir>/<tag>_rank<r>.pt``: ``[(epoch, [sample_idx, ...]), ...]``, one entry per step."""

    def __init__(self, out_dir: str, tag: str):
        self.out_dir, self.tag = out_dir, tag
        self.steps = []

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        idx = [int(s.metainfo['sample_idx']) for s in data_batch['data_samples']]
        self.steps.append((runner.epoch, idx))

    def after_train(self, runner) -> None:
        torch.save(dict(world=get_world_size(), steps=self.steps),
                   osp.join(self.out_dir, f'{self.tag}_rank{get_rank()}.pt'))
