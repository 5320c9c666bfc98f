"""Saves and restores the Python/NumPy/torch RNG states with each checkpoint.

With it, a run resumed with ``--resume`` draws the same random numbers in the main process
(ShuffleBN permutations, anything a hook draws) as the uninterrupted run. Augmentations are
seeded per sample by :class:`~mmmsf.datasets.ResumableSampler` and do not depend on these
states; the loader's worker base seed is drawn from a forked generator by
:class:`~mmmsf.engine.runner.ResumableEpochBasedTrainLoop`.

Only rank 0 writes checkpoints, so every rank resumes from rank 0's state. That is exact with
``randomness.diff_rank_seed=False`` (the default): all ranks then start from one seed and draw
the same numbers (ShuffleBN draws one global permutation on every rank). With
``diff_rank_seed=True`` ranks > 0 continue from rank 0's streams after a resume.
"""
import random

import numpy as np
import torch
from mmengine.hooks import Hook

from mmmsf.registry import HOOKS


def _state() -> dict:
    name, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    return dict(
        python=random.getstate(),
        # plain Python values only, so the checkpoint loads with weights_only=True
        numpy=(str(name), [int(k) for k in keys], int(pos), int(has_gauss), float(gauss)),
        torch=torch.get_rng_state(),
        cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])


def _set_state(state: dict) -> None:
    random.setstate(state['python'])
    name, keys, pos, has_gauss, gauss = state['numpy']
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state['torch'])
    if state.get('cuda') and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


@HOOKS.register_module()
class RandomStateHook(Hook):
    priority = 'LOWEST'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['rng_state'] = _state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('rng_state')
        if state:
            _set_state(state)
