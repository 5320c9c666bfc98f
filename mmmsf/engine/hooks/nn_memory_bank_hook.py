"""Checks and statistics of the NN memory bank (the model owns it and writes it each step):
checks at start, logged fill and pointer, checkpoint shape check."""
from mmengine.dist import get_world_size
from mmengine.hooks import Hook

from mmmsf.registry import HOOKS
from mmmsf.utils.misc import get_ori_model
from mmmsf.utils.sharded_state import SHARD_KEY
from ..runner.sharded_state_runner import ShardedStateRunner


@HOOKS.register_module()
class NNMemoryBankHook(Hook):
    """Validates the bank against the run, logs its statistics, guards its checkpointed state.

    * ``before_train``: the bank size must be a multiple of the global batch and >= k (clear
      error naming the fix); the bank's memory is reported.
    * every ``interval`` iterations: bank fill fraction, write pointer and (from the loss dict)
      training-time purity -- the share of the k neighbours, self excluded, with the query's
      label (paper Fig. 4) -- are logged.
    * ``after_load_checkpoint``: the saved bank must have the configured shape, so a resumed run
      continues with the very same bank and pointer (buffers of the model's state dict).
    * a **sharded** bank on several ranks needs the
      :class:`~mmmsf.engine.runner.ShardedStateRunner` (``runner_type`` of
      ``configs/_base_/default_runtime.py``), whose checkpoints hold the whole bank -- and M',
      the slot labels and the per-image cache -- and resume on any world size: one clear error
      before the run otherwise.
    """

    priority = 'NORMAL'

    def __init__(self, interval: int = 50):
        self.interval = interval

    @staticmethod
    def _model(runner):
        return get_ori_model(runner.model)

    def before_run(self, runner) -> None:
        bank = self._model(runner).memory_bank
        if bank.is_split and not isinstance(runner, ShardedStateRunner):
            raise ValueError(
                f'model.memory_bank.sharded=True on {get_world_size()} processes needs '
                f"runner_type='ShardedStateRunner' (configs/_base_/default_runtime.py sets it; "
                f'this run has {type(runner).__name__}): with it each checkpoint holds the '
                'whole bank and every rank begins with its own rows.')

    def before_train(self, runner) -> None:
        model = self._model(runner)
        bank = model.memory_bank
        batch = runner.train_dataloader.batch_size
        bank.check_batch(batch * get_world_size(), getattr(model, 'topk', 1))
        mib = bank.bank.numel() * bank.bank.element_size() / 2**20
        where = f' per rank, sharded over {get_world_size()} ranks' \
            if bank.is_split else ''
        runner.logger.info(f'NN memory bank: {bank.size} x {bank.dim} {bank.bank.dtype} '
                           f'({mib:.1f} MiB{where}), global batch {batch * get_world_size()}, '
                           f'k={getattr(model, "topk", "?")}, search={bank.search_backend}')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self.every_n_train_iters(runner, self.interval):
            return
        bank = self._model(runner).memory_bank
        runner.message_hub.update_scalar('train/bank_fill', bank.fill)
        runner.message_hub.update_scalar('train/bank_ptr', int(bank.ptr))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('state_dict', {})
        key = next((k for k in state if k.endswith('memory_bank.bank')), None)
        if key is None:
            return
        bank = self._model(runner).memory_bank
        if key[:-len('bank')] + SHARD_KEY in state:
            raise ValueError(f'the checkpoint holds one rank\'s shard of {key}, not the whole '
                             'bank: resume from a checkpoint the Runner saved (ShardedStateRunner '
                             'gathers the whole bank before every save).')
        if tuple(state[key].shape) != (bank.size, bank.dim):
            raise ValueError(f'checkpoint memory bank {tuple(state[key].shape)} differs from the '
                             f'configured {bank.size} x {bank.dim}: resume with the same '
                             'model.memory_bank settings (or load weights with load_from).')
