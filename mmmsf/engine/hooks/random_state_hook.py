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
from mmengine.hooks import Hook

from mmmsf.registry import HOOKS
from mmmsf.utils.rng_state import load_rng_state_dict, rng_state_dict


@HOOKS.register_module()
class RandomStateHook(Hook):
    priority = 'LOWEST'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['rng_state'] = rng_state_dict()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('rng_state')
        if state:
            load_rng_state_dict(state)
