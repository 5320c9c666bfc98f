"""mmengine's Runner for models with tables split across ranks (the sharded memory bank, M',
the slot labels, the per-image cache; :mod:`mmmsf.utils.sharded_state`).

``configs/_base_/default_runtime.py`` names it (``runner_type = 'ShardedStateRunner'``). It
differs from mmengine's Runner only where a split table needs it; with no split table (a
replicated bank, one process) it is mmengine's Runner:

* :meth:`ShardedStateRunner.save_checkpoint`: mmengine writes a checkpoint on rank 0 only
  (``Runner.save_checkpoint`` is ``master_only``); here every rank first gathers the split
  tables to rank 0 (a collective), so each checkpoint holds them whole, under the keys and
  shapes of a replicated run, and resumes on any world size, sharded or not. Every rank also
  takes rank 0's normalisation running statistics then (the ones the checkpoint holds), so a
  resumed run's processes hold what the uninterrupted run's hold.
* :meth:`ShardedStateRunner._init_model_weights`: after ``init_weights`` mmengine broadcasts
  every tensor of ``model.state_dict()`` from rank 0, which would give every rank rank 0's rows
  of a split table; each rank keeps its own rows instead, so a sharded run begins from the
  replicated run's bank.
"""
import torch
from mmengine.dist import get_world_size
from mmengine.runner import Runner

from mmmsf.registry import RUNNERS
from mmmsf.utils.misc import get_ori_model
from mmmsf.utils.sharded_state import full_state, split_modules
from .knn_val_loop import use_rank0_norm_statistics


@RUNNERS.register_module()
class ShardedStateRunner(Runner):
    """A Runner whose checkpoints hold split tables whole and whose weight initialisation keeps
    each rank's own rows of them (module docstring)."""

    def save_checkpoint(self, *args, **kwargs) -> None:
        """mmengine's ``save_checkpoint`` (rank 0 writes) with the split tables gathered to rank
        0 first; call it on every rank, as mmengine's CheckpointHook does.

        Before it every process takes rank 0's normalisation running statistics: a resumed run
        loads rank 0's into every process, while each process of an uninterrupted run would
        keep its own. Training never uses them (BN normalises with batch statistics in training
        mode; the kNN validation already takes rank 0's), so no loss or weight changes, but
        without it the processes other than rank 0 ended a resumed run with other statistics
        than the uninterrupted one (seen with ``--no-validate``)."""
        model = get_ori_model(self.model)
        if get_world_size() > 1:
            use_rank0_norm_statistics(model)
        with full_state(model):
            super().save_checkpoint(*args, **kwargs)

    def _init_model_weights(self) -> None:
        """mmengine's initialisation and broadcast from rank 0, then each rank's own rows of
        every split table put back."""
        model = get_ori_model(self.model)
        tables = [(mod, name) for _, mod in split_modules(model)
                  for name in mod.checkpoint_shapes()]
        own = [getattr(mod, name).detach().clone() for mod, name in tables]
        super()._init_model_weights()
        with torch.no_grad():
            for (mod, name), rows in zip(tables, own):
                getattr(mod, name).copy_(rows)
