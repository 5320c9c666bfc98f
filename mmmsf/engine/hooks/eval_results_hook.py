"""Writes the metrics of every validation of a run to ``<work_dir>/eval/<kind>.json``."""
import os.path as osp
from typing import Dict, Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from mmmsf.evaluation.results_io import results_path, write_results
from mmmsf.registry import HOOKS


@HOOKS.register_module()
class EvalResultsHook(Hook):
    """Keeps the history of validation metrics and writes the latest as the run's result.

    The file (format of :mod:`mmmsf.evaluation.results_io`) is what
    ``tools/analysis/results_table.py`` gathers; ``results`` holds the last validation's
    metrics with the evaluator prefix removed (e.g. ``top1``, ``top5``).

    Args:
        kind: ``'linear'`` (or another kind of :data:`~mmmsf.evaluation.results_io.KINDS`).
        out_file: default ``<work_dir>/eval/<kind>.json``.
    """

    priority = 'LOW'

    def __init__(self, kind: str = 'linear', out_file: Optional[str] = None):
        self.kind, self.out_file = kind, out_file
        self.history = []

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        if not metrics:
            return
        results = {k.split('/')[-1]: float(v) for k, v in metrics.items()}
        self.history.append(dict(epoch=runner.epoch, **results))
        if not is_main_process():
            return
        model_cfg = runner.cfg.get('model', {})
        linear_cfg = runner.cfg.get('linear_cfg', {}) or {}
        precomputed_from = linear_cfg.get('precomputed_from')
        subset = linear_cfg.get('train_subset', runner.cfg.get('train_dataloader', {}).get(
            'dataset', {}).get('ann_file')) or None
        write_results(self.out_file or results_path(runner.work_dir, self.kind), self.kind,
                      results, epoch=runner.epoch, history=self.history,
                      checkpoint=model_cfg.get('pretrained') or precomputed_from,
                      precomputed_features=model_cfg.get('backbone') is None,
                      train_subset=subset,
                      config=osp.abspath(runner.cfg.filename) if runner.cfg.filename else None,
                      work_dir=runner.work_dir)
