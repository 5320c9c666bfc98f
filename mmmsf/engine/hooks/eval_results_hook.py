"""Writes the metrics of every validation of a run to ``<work_dir>/eval/<kind>.json``."""
import os.path as osp
from typing import Any, Dict, List, Optional

from mmengine.dist import broadcast_object_list, get_world_size, is_main_process
from mmengine.hooks import Hook

from mmmsf.evaluation.results_io import KINDS, read_results, results_path, write_results
from mmmsf.registry import HOOKS


def best_epochs(history: List[Dict], names) -> Dict[str, Dict[str, Any]]:
    """``{name: {'value', 'epoch'}}``: the highest value of each name in ``history`` and its
    epoch (the earliest of equal values)."""
    best = {}
    for name in names:
        top = max(history, key=lambda h: (h.get(name, float('-inf')), -h['epoch']))
        best[name] = dict(value=top[name], epoch=top['epoch'])
    return best


@HOOKS.register_module()
class EvalResultsHook(Hook):
    """Keeps the history of a run's validations and writes it with the latest as the run's
    result (the format of :mod:`mmmsf.evaluation.results_io`, gathered by
    ``tools/analysis/results_table.py``): ``results`` (the last validation's numbers),
    ``epoch``, ``best`` (the best value of each number and its epoch, the earliest on ties),
    ``history`` (every validated epoch's numbers) and where they came from.

    The numbers and the description of the run come from the val loop when it offers them for
    this kind (``results_kind``, ``named_results(metrics)``, ``results_meta(metrics)``: the
    online kNN loop, ``1-NN`` / ``20-NN``); otherwise the numbers are the metrics without the
    evaluator prefix (the linear probe's ``top1``, ``top5``) described by the probe's checkpoint,
    feature mode and training subset.

    The history is message hub information (``<kind>_history``), so each checkpoint holds the
    validations before it; after a resume the validations of the existing file that the resumed
    checkpoint predates (checkpoints are written before their epoch's validation) are added
    back. Every process keeps rank 0's history; only the main process writes the file.

    Args:
        kind: one of :data:`~mmmsf.evaluation.results_io.KINDS` (``'linear'``, ``'knn'``).
        out_file: default ``<work_dir>/eval/<kind>.json``.
    """

    priority = 'LOW'

    def __init__(self, kind: str = 'linear', out_file: Optional[str] = None):
        if kind not in KINDS:
            raise ValueError(f'EvalResultsHook: kind={kind!r} is not a result kind; use one of '
                             f'{KINDS}.')
        self.kind, self.out_file = kind, out_file
        self.history: List[Dict] = []

    @property
    def history_key(self) -> str:
        return f'{self.kind}_history'

    def results_file(self, runner) -> str:
        return self.out_file or results_path(runner.work_dir, self.kind)

    def before_run(self, runner) -> None:
        """Start from an empty history (a resume then loads the checkpoint's). mmengine names
        a run's message hub after its config and start second, so two runs of one config
        started within a second in one process share a hub: the second must not inherit the
        first's validations."""
        runner.message_hub.update_info(self.history_key, [])
        self.history = []

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        if not metrics:
            return
        loop = self._describing_loop(runner)
        results = (loop.named_results(metrics) if loop is not None else
                   {k.split('/')[-1]: float(v) for k, v in metrics.items()})
        epoch = runner.epoch
        history = [h for h in self._earlier(runner) if h['epoch'] != epoch]
        history.append(dict(epoch=epoch, **results))
        history.sort(key=lambda h: h['epoch'])
        if get_world_size() > 1:  # one history everywhere, whatever each process could read
            box = [history]
            broadcast_object_list(box, src=0)
            history = box[0]
        runner.message_hub.update_info(self.history_key, history)
        self.history = history
        if not is_main_process():
            return
        meta = loop.results_meta(metrics) if loop is not None else self._probe_meta(runner)
        cfg_file = runner.cfg.filename
        write_results(self.results_file(runner), self.kind, results, epoch=epoch,
                      best=best_epochs(history, results), history=history, **meta,
                      config=osp.abspath(cfg_file) if cfg_file else None,
                      work_dir=runner.work_dir)

    def _describing_loop(self, runner):
        """The val loop when it names and describes results of this kind, else None."""
        loop = runner.val_loop
        return loop if getattr(loop, 'results_kind', None) == self.kind else None

    def _earlier(self, runner) -> List[Dict]:
        """Earlier validations of this run: the checkpointed ones, plus (after a resume) those
        of the existing file not yet checkpointed (epochs before the current one)."""
        history = [dict(h) for h in runner.message_hub.get_info(self.history_key, [])]
        path = self.results_file(runner)
        if runner.cfg.get('resume') and osp.isfile(path):
            seen = {h['epoch'] for h in history}
            try:
                earlier = read_results(path).get('history') or []
            except (ValueError, OSError):
                earlier = []
            history += [dict(h) for h in earlier
                        if h.get('epoch') not in seen and h.get('epoch', 0) < runner.epoch]
        return sorted(history, key=lambda h: h['epoch'])

    @staticmethod
    def _probe_meta(runner) -> Dict[str, Any]:
        """A linear probe's checkpoint, feature mode and training subset."""
        model_cfg = runner.cfg.get('model', {})
        linear_cfg = runner.cfg.get('linear_cfg', {}) or {}
        subset = linear_cfg.get('train_subset', runner.cfg.get('train_dataloader', {}).get(
            'dataset', {}).get('ann_file')) or None
        return dict(checkpoint=model_cfg.get('pretrained') or linear_cfg.get('precomputed_from'),
                    precomputed_features=model_cfg.get('backbone') is None,
                    train_subset=subset)
