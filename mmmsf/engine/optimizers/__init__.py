from .cpu_autocast_optim_wrapper import CPUAutocastOptimWrapper
from .lars import LARS

__all__ = ['CPUAutocastOptimWrapper', 'LARS']
