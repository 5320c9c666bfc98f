"""Online kNN validation during pre-training (mmengine's ``val_cfg`` / ``val_dataloader`` /
``val_evaluator``).

Every ``train_cfg.val_interval`` epochs (and after the last one) the frozen online backbone, in
eval mode, embeds

* the memory set (``knn_train_dataloader`` of the config, or ``memory_dataloader``; optionally
  a class-balanced subset of it) with :func:`~mmmsf.evaluation.extract_features`, and
* the query set (``val_dataloader``) batch by batch into the evaluator
  (:class:`~mmmsf.evaluation.KNNAccuracy`),

both L2-normalised by :func:`~mmmsf.evaluation.feature_extraction.embed_batch`, exactly as
``tools/knn_eval.py`` prepares them, so ``knn/top1@1`` / ``knn/top1@20`` are the numbers
``tools/knn_eval.py`` prints for the checkpoint of that epoch. In DDP every rank embeds its shard
of both sets (the samplers') and the features are gathered; every rank first takes rank 0's
BatchNorm running statistics -- the ones the checkpoint holds (:func:`use_rank0_norm_statistics`).

Besides the metrics it logs ``knn/seconds`` (wall time of the validation) and
``knn/epoch_share`` (that time over the time of one training epoch, measured from the iteration
times since the previous validation). ``<work_dir>/eval/knn.json`` is written by
:class:`~mmmsf.engine.hooks.EvalResultsHook` (``kind='knn'``, registered by the loop unless the
config has one): the latest validation's ``1-NN`` / ``20-NN`` (named by the loop,
:meth:`KNNValLoop.named_results`), every validation's numbers (``history``, kept in the
checkpoints and across resumes) and the best epoch of each (``best``, labelled as such by
``tools/analysis/results_table.py``).
"""
import copy
import os.path as osp
import re
import time
from typing import Any, Dict, Optional, Sequence, Union

import torch
from mmengine.runner import ValLoop
from mmengine.runner.amp import autocast

from mmmsf.datasets.label_subset import class_balanced_indices
from mmmsf.engine.hooks.eval_results_hook import EvalResultsHook
from mmmsf.evaluation.feature_extraction import embed_batch, extract_features
from mmmsf.evaluation.knn_accuracy import KNNAccuracy
from mmmsf.registry import DATASETS, LOOPS
from mmmsf.utils.misc import get_ori_model
from mmmsf.utils.rng_state import preserved_rng_state

NO_VALIDATE = ('or train without kNN validation: tools/train.py --no-validate (in a config: '
               'val_cfg = val_dataloader = val_evaluator = None)')


def use_rank0_norm_statistics(model: torch.nn.Module) -> None:
    """Give every process rank 0's normalisation running statistics (BatchNorm running mean,
    variance and count, of every norm layer of ``model``).

    In multi-process training each process updates its own statistics from its own batches, but
    a checkpoint holds rank 0's (rank 0 writes it) and a resumed run loads them into every
    process. Validating with rank 0's statistics makes the online kNN the number
    ``tools/knn_eval.py`` gives for the checkpoint of that epoch, and the same in a resumed run
    as in an uninterrupted one. Training is not affected: in training mode the layers normalise
    with batch statistics. (mmengine's ``SyncBuffersHook`` would average them instead, which is
    not what the checkpoint of an uninterrupted run holds.)
    """
    from mmengine.dist import broadcast, get_world_size
    if get_world_size() < 2:
        return
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._NormBase) and m.track_running_stats:
            for buf in (m.running_mean, m.running_var, m.num_batches_tracked):
                if buf is not None:
                    broadcast(buf, src=0)


@LOOPS.register_module()
class KNNValLoop(ValLoop):
    """kNN validation of the online backbone.

    Args:
        runner, dataloader, evaluator: as mmengine's ``ValLoop`` (the dataloader is the query
            set; the evaluator must hold a :class:`~mmmsf.evaluation.KNNAccuracy`).
        memory_dataloader: the memory set; default: the config's ``knn_train_dataloader``.
        memory_subset: a class-balanced subset of the memory set, e.g. ``dict(fraction=0.1)``
            (``round(0.1 * N / num_classes)`` images of every class) or ``dict(per_class=100)``;
            ``seed`` (default 0) fixes the draw.
        cache: keep the memory set's features in ``<work_dir>/knn_cache/memory.npz``, reused
            while the backbone weights and images are unchanged (e.g. when a run is validated
            again at the same weights); the query features are always computed.
        fp16: autocast the backbone forward of both sets.
    """

    def __init__(self, runner, dataloader: Union[Dict, object], evaluator,
                 memory_dataloader: Optional[Dict] = None, memory_subset: Optional[Dict] = None,
                 cache: bool = False, fp16: bool = False) -> None:
        try:
            super().__init__(runner, dataloader, evaluator, fp16=fp16)
        except (FileNotFoundError, ValueError) as e:
            raise type(e)(f'kNN validation, query set (val_dataloader.dataset): {e} Or '
                          f'{NO_VALIDATE[3:]}.') from None
        self.metric = self._knn_metric()
        if memory_dataloader is None:
            memory_dataloader = runner.cfg.get('knn_train_dataloader')
        if memory_dataloader is None:
            raise KeyError('kNN validation needs a memory set: give val_cfg.memory_dataloader or '
                           f'a knn_train_dataloader in the config, {NO_VALIDATE}.')
        self.memory_subset, self.cache = memory_subset, cache
        self.memory_dataloader = self._build_memory_loader(memory_dataloader)
        self._check_classes()
        self._check_ks()
        self._last_iter: Optional[int] = None
        self._num_memory: Optional[int] = None
        self._ensure_results_hook()

    # ------------------------------------------------------------------ construction
    def _knn_metric(self) -> KNNAccuracy:
        found = [m for m in self.evaluator.metrics if isinstance(m, KNNAccuracy)]
        if len(found) != 1:
            names = [type(m).__name__ for m in self.evaluator.metrics]
            raise TypeError("KNNValLoop needs exactly one val_evaluator metric of type "
                            f"'KNNAccuracy', got {names}: set val_evaluator = "
                            "dict(type='KNNAccuracy').")
        return found[0]

    def _ensure_results_hook(self) -> None:
        """``eval/knn.json`` is written by an ``EvalResultsHook(kind='knn')``: the config's, or
        one registered here."""
        if not any(isinstance(h, EvalResultsHook) and h.kind == self.results_kind
                   for h in self.runner.hooks):
            self.runner.register_hook(EvalResultsHook(kind=self.results_kind))

    def _build_memory_loader(self, cfg: Dict):
        cfg = copy.deepcopy(dict(cfg))
        dataset = cfg.pop('dataset')
        try:
            if isinstance(dataset, dict):
                dataset = DATASETS.build(dataset)
            if hasattr(dataset, 'full_init'):
                dataset.full_init()
        except (FileNotFoundError, ValueError) as e:
            raise type(e)(f'kNN validation, memory set (knn_train_dataloader.dataset): {e} Or '
                          f'{NO_VALIDATE[3:]}.') from None
        if self.memory_subset:
            sub = dict(self.memory_subset)
            idx = class_balanced_indices(dataset.labels, sub.get('fraction'),
                                         sub.get('per_class'), sub.get('seed', 0))
            dataset.get_subset_(idx)
        cfg['dataset'] = dataset
        return self.runner.build_dataloader(cfg, seed=self.runner.seed)

    def _check_classes(self) -> None:
        mem = tuple(self.memory_dataloader.dataset.metainfo.get('classes') or ())
        qry = tuple(self.dataloader.dataset.metainfo.get('classes') or ())
        if mem != qry:
            only_q = [c for c in qry if c not in mem][:3]
            only_m = [c for c in mem if c not in qry][:3]
            raise ValueError(
                f'kNN validation: the query set (val_dataloader, {len(qry)} classes) and the '
                f'memory set (knn_train_dataloader, {len(mem)} classes) have different classes '
                f'(only in the query set: {only_q}, only in the memory set: {only_m}'
                f'{", or another order" if not only_q and not only_m else ""}), so their labels '
                'do not match. Point both at splits of the same dataset (the same class '
                f'folders, or the same classes=[...] in both datasets), {NO_VALIDATE}.')

    def _check_ks(self) -> None:
        """Every k of the vote fits the memory set -- checked when the loop is built (before
        step 1), not at the first validation."""
        ks = self.metric.ks
        if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
            raise ValueError(f'kNN validation: val_evaluator.ks={ks!r} must be whole numbers '
                             f'>= 1 (the paper: ks=(1, 20)), {NO_VALIDATE}.')
        n = len(self.memory_dataloader.dataset)
        if max(ks) > n:
            subset = (f' after val_cfg.memory_subset={dict(self.memory_subset)!r}'
                      if self.memory_subset else '')
            raise ValueError(
                f'kNN validation: val_evaluator.ks={tuple(ks)!r} votes among up to {max(ks)} '
                f'neighbours, but the memory set (knn_train_dataloader) has {n} images{subset}. '
                'Lower val_evaluator.ks (knn_cfg.ks in the demo and ImageNet configs)'
                + (', enlarge val_cfg.memory_subset' if self.memory_subset else '')
                + f' or use a larger memory set, {NO_VALIDATE}.')

    # ------------------------------------------------------------------ validation
    def _backbone_model(self) -> torch.nn.Module:
        return get_ori_model(self.runner.model)

    def run(self) -> dict:
        """Embed both sets, vote, log the metrics and cost (``eval/knn.json``: EvalResultsHook).

        The Python / NumPy / torch random states are restored afterwards (iterating a
        dataloader draws from torch's), so a run trains exactly as it would without validation
        and a resumed run stays bit-exact.
        """
        with preserved_rng_state():
            return self._run()

    def _run(self) -> dict:
        t0 = time.perf_counter()
        self.runner.call_hook('before_val')
        self.runner.call_hook('before_val_epoch')
        model = self._backbone_model()
        use_rank0_norm_statistics(model)
        was_training = model.training
        model.eval()
        cache = osp.join(self.runner.work_dir, 'knn_cache', 'memory.npz') if self.cache else None
        with autocast(enabled=self.fp16):
            feats, labels = extract_features(model, self.memory_dataloader, cache_file=cache)
        self.metric.set_memory(feats, labels)
        for idx, data_batch in enumerate(self.dataloader):
            self.run_iter(idx, data_batch)
        metrics = self.evaluator.evaluate(len(self.dataloader.dataset))
        model.train(was_training)
        seconds = time.perf_counter() - t0
        metrics[f'{self.metric.prefix}/seconds'] = seconds
        share = self._epoch_share(seconds)
        if share is not None:
            metrics[f'{self.metric.prefix}/epoch_share'] = share
        self._num_memory = len(feats)
        self.runner.call_hook('after_val_epoch', metrics=metrics)
        self.runner.call_hook('after_val')
        return metrics

    @torch.no_grad()
    def run_iter(self, idx, data_batch: Sequence[dict]) -> None:
        self.runner.call_hook('before_val_iter', batch_idx=idx, data_batch=data_batch)
        model = self._backbone_model()
        with autocast(enabled=self.fp16):
            feats, labels, _ = embed_batch(model, data_batch)
        if bool((labels < 0).any()):
            raise ValueError(f'kNN validation: the query set has unlabelled images; use an '
                             f'ImageFolder with with_label=True for val_dataloader, {NO_VALIDATE}.')
        outputs = [dict(feature=f, gt_label=int(y)) for f, y in zip(feats, labels)]
        self.evaluator.process(data_samples=outputs, data_batch=data_batch)
        self.runner.call_hook('after_val_iter', batch_idx=idx, data_batch=data_batch,
                              outputs=outputs)

    def _epoch_share(self, seconds: float) -> Optional[float]:
        """``seconds`` over one training epoch's time (mean iteration time since the previous
        validation x iterations per epoch); None outside training or without iteration times."""
        hub, it = self.runner.message_hub, self.runner.iter
        last, self._last_iter = self._last_iter, it
        if 'train/time' not in hub.log_scalars or it == 0:
            return None
        times = hub.get_scalar('train/time').data[0]
        try:
            per_epoch = len(self.runner.train_dataloader)
        except (TypeError, RuntimeError):
            return None
        n = it - last if last is not None else per_epoch * self.runner.train_loop.val_interval
        n = min(max(n, 1), len(times))
        mean_iter = float(times[-n:].mean())
        return seconds / (mean_iter * per_epoch) if mean_iter > 0 else None

    # ------------------------------------------------------------------ results file
    results_kind = 'knn'

    def named_results(self, metrics: Dict[str, float]) -> Dict[str, float]:
        """The numbers of ``eval/knn.json``: ``knn/top1@k`` as ``k-NN``."""
        results = {}
        for key, value in metrics.items():
            m = re.fullmatch(r'(?:.*/)?top1@(\d+)', key)
            if m:
                results[f'{m.group(1)}-NN'] = float(value)
        return results

    def results_meta(self, metrics: Dict[str, float]) -> Dict[str, Any]:
        """What ``eval/knn.json`` says of the validation: online, the checkpoint of its epoch (if
        written), the memory and query sets, the vote and its time."""
        ckpt = osp.join(self.runner.work_dir, f'epoch_{self.runner.epoch}.pth')
        return dict(online=True, checkpoint=ckpt if osp.isfile(ckpt) else None,
                    memory_images=self._num_memory, query_images=len(self.dataloader.dataset),
                    memory_subset=self.memory_subset, weighted=self.metric.weighted,
                    seconds=metrics.get(f'{self.metric.prefix}/seconds'))
