"""EMA update of the target encoder before every training step (paper Eq. 3)."""
import math

from mmengine.hooks import Hook

from mmmsf.registry import HOOKS
from mmmsf.utils.misc import get_ori_model


@HOOKS.register_module()
class MomentumUpdateHook(Hook):
    """``theta_t <- m * theta_t + (1 - m) * theta_o`` before each iteration.

    ``momentum`` weights the OLD target weights (paper and reference code: constant 0.99).
    ``schedule='cosine'`` raises it to ``end_momentum`` along a half cosine over training
    (BYOL's schedule): ``m = end - (end - m0) * (cos(pi * t / T) + 1) / 2``.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, momentum: float = 0.99, schedule: str = 'constant',
                 end_momentum: float = 1.0):
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f'MomentumUpdateHook momentum={momentum} must be in [0, 1].')
        if schedule not in ('constant', 'cosine'):
            raise KeyError(f"MomentumUpdateHook schedule={schedule!r}: 'constant' or 'cosine'.")
        self.base, self.schedule, self.end = momentum, schedule, end_momentum

    def momentum_at(self, cur_iter: int, max_iters: int) -> float:
        if self.schedule == 'constant':
            return self.base
        return self.end - (self.end - self.base) * (math.cos(math.pi * cur_iter / max_iters) + 1) / 2

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        model = get_ori_model(runner.model)
        m = self.momentum_at(runner.iter, runner.max_iters)
        model.momentum_update(m)
        runner.message_hub.update_scalar('train/momentum', m)
