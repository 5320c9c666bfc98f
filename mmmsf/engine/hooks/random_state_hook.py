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
        name, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
        checkpoint['rng_state'] = dict(
            python=random.getstate(),
            # plain Python values only, so the checkpoint loads with weights_only=True
            numpy=(str(name), [int(k) for k in keys], int(pos), int(has_gauss), float(gauss)),
            torch=torch.get_rng_state(),
            cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('rng_state')
        if not state:
            return
        random.setstate(state['python'])
        name, keys, pos, has_gauss, gauss = state['numpy']
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
        torch.set_rng_state(state['torch'])
        if state.get('cuda') and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda'])
