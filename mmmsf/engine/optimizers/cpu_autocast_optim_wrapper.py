"""Mixed precision on the CPU: bfloat16 autocast (mmengine's AmpOptimWrapper is GPU-only).

bfloat16 has float32's exponent range, so no loss scaling is needed; parameters, gradients and
optimiser state stay float32. On GPUs ``--amp`` uses mmengine's ``AmpOptimWrapper`` instead.
"""
from contextlib import contextmanager

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper

from mmmsf.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUAutocastOptimWrapper(OptimWrapper):

    def __init__(self, *args, dtype: str = 'bfloat16', **kwargs):
        super().__init__(*args, **kwargs)
        self.cast_dtype = getattr(torch, dtype)

    @contextmanager
    def optim_context(self, model: nn.Module):
        with super().optim_context(model), torch.autocast('cpu', dtype=self.cast_dtype):
            yield
