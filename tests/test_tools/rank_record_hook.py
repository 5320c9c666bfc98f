"""Test hook for the launcher tests: every rank writes what it ended with (imported by the
generated configs through ``custom_imports``, so it runs inside the launched processes)."""
import os.path as osp

import torch
import torch.distributed as dist
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook

from mmmsf.registry import HOOKS


@HOOKS.register_module(force=True)
class RankRecordHook(Hook):
    """Keeps the rank-averaged loss of every step; after training, saves
    ``<out_dir>/rank<r>.pt`` with the losses, the bank, its pointer and the model state."""

    priority = 'LOWEST'

    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.losses = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        loss = outputs['loss'].detach().clone().double()
        if get_world_size() > 1:
            dist.all_reduce(loss)
            loss /= get_world_size()
        self.losses.append(float(loss))

    def after_train(self, runner) -> None:
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        bank = model.memory_bank
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()
                 if not k.startswith('memory_bank.')}
        torch.save(dict(rank=get_rank(), world=get_world_size(), losses=self.losses,
                        bank=bank.bank.detach().cpu().clone(), ptr=int(bank.ptr),
                        sample_idx=bank.sample_idx.detach().cpu().clone(), state=state),
                   osp.join(self.out_dir, f'rank{get_rank()}.pt'))
