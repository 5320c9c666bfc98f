"""Epoch-based training loop that resumes in the middle of an epoch, exactly.

mmengine's ``EpochBasedTrainLoop`` restarts a resumed epoch from its first batch, so a run killed
mid-epoch would see part of that epoch twice. This loop skips the batches already trained,
at the sampler (no image of them is loaded), with :class:`~mmmsf.datasets.ResumableSampler`.

Starting the loader's iterator draws a worker base seed from torch's global generator (every
epoch without persistent workers, once with them, and again on every resume). The loop draws it
from a forked generator, so the main process's random stream -- restored from the checkpoint by
:class:`~mmmsf.engine.hooks.RandomStateHook` -- is the same in a resumed run as in the
uninterrupted one. Augmentations do not use the workers' streams at all: the sampler seeds each
sample's (:mod:`mmmsf.datasets.sample_seed`).
"""
import torch
from mmengine.runner import EpochBasedTrainLoop

from mmmsf.registry import LOOPS


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):

    def run_epoch(self) -> None:
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        done = self._iter - self._epoch * len(self.dataloader)
        sampler = self.dataloader.sampler
        if done > 0:
            if not hasattr(sampler, 'skip'):
                raise TypeError('resuming mid-epoch needs train_dataloader.sampler='
                                "dict(type='ResumableSampler'); fix the config.")
            sampler.skip = done * self.dataloader.batch_size
            self.runner.logger.info(f'resuming epoch {self._epoch + 1} after batch {done}')
        else:
            done = 0
        with torch.random.fork_rng(devices=[]):
            batches = iter(self.dataloader)
        for idx, data_batch in enumerate(batches, start=done):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1
