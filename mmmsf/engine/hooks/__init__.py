from .momentum_update_hook import MomentumUpdateHook
from .nn_memory_bank_hook import NNMemoryBankHook
from .random_state_hook import RandomStateHook

__all__ = ['MomentumUpdateHook', 'NNMemoryBankHook', 'RandomStateHook']
