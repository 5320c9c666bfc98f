"""Saves and restores the Python/NumPy/torch RNG states with each checkpoint.

With it, a run resumed with ``--resume`` draws the same augmentations and shuffles as the
uninterrupted run (exactly so with ``num_workers=0``; workers are re-seeded from torch's RNG).
"""
import random

import numpy as np
import torch
from mmengine.hooks import Hook

from mmmsf.registry import HOOKS


@HOOKS.register_module()
class RandomStateHook(Hook):
    priority = 'LOWEST'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['rng_state'] = dict(
            python=random.getstate(), numpy=np.random.get_state(legacy=False),
            torch=torch.get_rng_state(),
            cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('rng_state')
        if not state:
            return
        random.setstate(state['python'])
        np.random.set_state(state['numpy'])
        torch.set_rng_state(state['torch'])
        if state.get('cuda') and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda'])
