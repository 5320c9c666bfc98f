"""Reading the scalars a run logged (mmengine's LocalVisBackend, see
``configs/_base_/default_runtime.py``).

mmengine writes one JSON object per logged iteration to
``<work_dir>/<timestamp>/vis_data/scalars.json``, e.g.
``{"lr": 0.05, "loss": 1.2, "purity": 0.31, "epoch": 3, "iter": 118, "step": 118}`` (training,
``epoch`` 1-based) and one object per validation (metrics, ``step`` = epoch). A resumed run
starts a new ``<timestamp>`` folder; the folders are read in time order and a step logged twice
keeps its latest value.
"""
import glob
import json
import os.path as osp
from collections import OrderedDict
from typing import Dict, Iterator, List, Tuple

import numpy as np


def scalar_files(work_dir: str) -> List[str]:
    """The ``scalars.json`` files of a work_dir, oldest run first."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files and osp.isfile(osp.join(work_dir, 'vis_data', 'scalars.json')):
        files = [osp.join(work_dir, 'vis_data', 'scalars.json')]  # a timestamp folder itself
    if not files:
        raise FileNotFoundError(f'no <timestamp>/vis_data/scalars.json under {work_dir!r}: is '
                                'it the work_dir of a training run with the LocalVisBackend '
                                '(configs/_base_/default_runtime.py)?')
    return files


def _records(work_dir: str) -> Iterator[Dict]:
    """Every logged record of the run's scalar files, in file order; a corrupt line is an
    error naming the file and line."""
    for path in scalar_files(work_dir):
        with open(path) as f:
            for ln_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f'{path}:{ln_no} is not valid JSON ({e}).') from None
                yield rec


def load_train_scalars(work_dir: str) -> List[Dict]:
    """Training records (those with an ``epoch`` and a ``loss``), one per logged step."""
    by_step: 'OrderedDict[int, Dict]' = OrderedDict()
    for rec in _records(work_dir):
        if 'epoch' in rec and 'loss' in rec and 'step' in rec:
            by_step[int(rec['step'])] = rec
    return [by_step[s] for s in sorted(by_step)]


def scalar_per_epoch(records: List[Dict], key: str) -> Tuple[np.ndarray, np.ndarray]:
    """(epochs, mean of the logged ``key`` values of each epoch), epochs 1-based, ascending."""
    sums: Dict[int, List[float]] = {}
    for rec in records:
        if key in rec:
            sums.setdefault(int(rec['epoch']), []).append(float(rec[key]))
    if not sums:
        keys = sorted({k for r in records for k in r})
        raise KeyError(f'no logged scalar {key!r}; the run logged {keys}.')
    epochs = np.array(sorted(sums))
    return epochs, np.array([float(np.mean(sums[e])) for e in epochs])


def load_val_scalars(work_dir: str) -> List[Dict]:
    """Validation records (``step`` = the epoch validated, no ``loss``), one per epoch, in epoch
    order, e.g. ``{"knn/top1@1": 31.2, "knn/top1@20": 35.0, "step": 3}``; an epoch logged
    twice (a resumed run validating again) keeps its latest record."""
    by_epoch: Dict[int, Dict] = {}
    for rec in _records(work_dir):
        if 'loss' not in rec and 'iter' not in rec and 'step' in rec:
            by_epoch[int(rec['step'])] = rec
    return [by_epoch[e] for e in sorted(by_epoch)]
