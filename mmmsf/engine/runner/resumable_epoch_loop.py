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

A resume counts what is done in *samples*, not in batches, so it may use another number of
processes (or another batch size): the loop keeps the number of samples the current epoch has
consumed, over all processes, in the message hub (saved with every checkpoint). The sampler's
global order does not depend on the number of processes and a batch step consumes a prefix of
it (rank ``r`` takes positions ``r, r + world, ...``), so a resumed epoch continues after the
first ``consumed`` positions: every process skips ``consumed / world`` of its own. When
``consumed`` is not a multiple of the new number of processes the epoch cannot continue exactly,
and the resume is refused with the reason and the numbers of processes that can.

An iteration-based learning-rate schedule (``by_epoch=False``, or ``convert_to_iter_based=True``)
counts steps, and a resumed scheduler continues the checkpoint's count: on another global batch
(processes x ``train_dataloader.batch_size``) its steps would no longer follow the images trained
(a cosine over the run would stop short of its end, or reach it early), so such a resume is
refused before any step, with the batch that continues exactly.
"""
from typing import Optional

import torch
from mmengine.dist import get_world_size
from mmengine.runner import EpochBasedTrainLoop

from mmmsf.registry import LOOPS

EPOCH_SAMPLES_KEY = 'train_epoch_samples'  # dict(epoch=e, samples=n): n samples of epoch e done


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):

    def run(self) -> torch.nn.Module:
        self._check_iteration_schedules()
        return super().run()

    def run_epoch(self) -> None:
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        world = get_world_size()
        done = self._consumed_samples(world)
        sampler = self.dataloader.sampler
        if done > 0:
            if not hasattr(sampler, 'skip'):
                raise TypeError('resuming mid-epoch needs train_dataloader.sampler='
                                "dict(type='ResumableSampler'); fix the config.")
            if done % world:
                raise RuntimeError(self._cannot_continue(done, world))
            sampler.skip = done // world
            self.runner.logger.info(
                f'resuming epoch {self._epoch + 1} after {done} of its '
                f'{len(self.dataloader.dataset)} images (counted over all {world} processes)')
        else:
            done = 0
        self._epoch_samples = done
        with torch.random.fork_rng(devices=[]):
            batches = iter(self.dataloader)
        start = done // world // (self.dataloader.batch_size or 1)
        for idx, data_batch in enumerate(batches, start=start):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

    def run_iter(self, idx, data_batch) -> None:
        # counted before the step, so the checkpoint written after it (after_train_iter)
        # records this batch as done
        self._epoch_samples += self._global_batch(data_batch)
        self.runner.message_hub.update_info(
            EPOCH_SAMPLES_KEY, dict(epoch=self._epoch, samples=self._epoch_samples,
                                    global_batch=self._configured_global_batch()))
        super().run_iter(idx, data_batch)

    def _configured_global_batch(self) -> int:
        return (self.dataloader.batch_size or 1) * get_world_size()

    def _check_iteration_schedules(self) -> None:
        """Refuse to resume an iteration-based LR schedule on another global batch."""
        info = self.runner.message_hub.get_info(EPOCH_SAMPLES_KEY)
        if self._iter == 0 or not isinstance(info, dict) or 'global_batch' not in info:
            return  # a fresh run, or a checkpoint written before the batch was recorded
        old, new = int(info['global_batch']), self._configured_global_batch()
        schedulers = self.runner.param_schedulers or []
        if isinstance(schedulers, dict):
            schedulers = [s for group in schedulers.values() for s in group]
        by_iter = [type(s).__name__ for s in schedulers if not getattr(s, 'by_epoch', True)]
        if old == new or not by_iter:
            return
        world = get_world_size()
        per = f'{world} processes x train_dataloader.batch_size={new // world}'
        fit = (f'train_dataloader.batch_size={old // world} on {world} processes'
               if old % world == 0 else
               ', '.join(f'{old // n} on {n}' for n in range(1, old + 1) if old % n == 0)
               + ' processes (train_dataloader.batch_size on processes)')
        raise RuntimeError(
            f'cannot resume this checkpoint with global batch {new} ({per}): '
            f'param_scheduler {", ".join(by_iter)} counts iterations (by_epoch=False, or '
            f'convert_to_iter_based=True), and the checkpoint was trained in steps of {old} '
            'images: the learning rate would no longer follow the images trained (the schedule '
            f'would end too early or too late). Resume with global batch {old}: {fit}; or use '
            'epoch-based schedules (by_epoch=True without convert_to_iter_based).')

    def _global_batch(self, data_batch) -> int:
        """Samples of this step over all processes (every rank's shard has the same length)."""
        samples = data_batch.get('data_samples') if isinstance(data_batch, dict) else None
        n = len(samples) if isinstance(samples, (list, tuple)) else self.dataloader.batch_size
        return int(n) * get_world_size()

    def _consumed_samples(self, world: int) -> int:
        """Samples of the current epoch already trained (over all processes): the message hub's
        count when it is of this epoch; for a checkpoint written before the count existed,
        batches since the epoch began x this run's batch (right on the same number of
        processes and batch size only)."""
        info: Optional[dict] = self.runner.message_hub.get_info(EPOCH_SAMPLES_KEY)
        if isinstance(info, dict) and 'epoch' in info:
            return int(info['samples']) if int(info['epoch']) == self._epoch else 0
        batches = self._iter - self._epoch * len(self.dataloader)
        return max(batches, 0) * (self.dataloader.batch_size or 1) * world

    def _cannot_continue(self, done: int, world: int) -> str:
        fits = [n for n in range(1, 65) if done % n == 0 and n != world]
        other = (f'from the checkpoint of the end of epoch {self._epoch} '
                 f'(epoch_{self._epoch}.pth)' if self._epoch else 'by starting the run again')
        return (f'cannot resume epoch {self._epoch + 1} exactly on {world} processes: the '
                f'checkpoint was written after {done} of its images (over all processes), and '
                f'{done} is not a multiple of {world}, so the processes cannot each skip the '
                f'same number of images already trained. Resume this checkpoint on '
                f'{", ".join(map(str, fits[:8]))} processes, or on any number {other}.')
