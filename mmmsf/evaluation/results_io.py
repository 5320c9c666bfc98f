"""One JSON format for every evaluation result (kNN, linear, transfer), read by the results table.

``<work_dir>/eval/<kind>[_<tag>].json``::

    {"kind": "knn" | "linear" | "transfer", "results": {"1-NN": 62.0, ...},
     "checkpoint": "...", "config": "...", "epoch": 200, ...}
"""
import datetime
import json
import os
import os.path as osp
from typing import Any, Dict, List, Optional

from mmmsf.utils.io import atomic_write_json

KINDS = ('knn', 'linear', 'transfer')


def results_path(work_dir: str, kind: str, tag: Optional[str] = None) -> str:
    """``<work_dir>/eval/<kind>[_<tag>].json``."""
    return osp.join(work_dir, 'eval', f'{kind}{"_" + tag if tag else ""}.json')


def checkpoint_results_path(checkpoint: Optional[str], kind: str) -> str:
    """``<checkpoint folder>/eval/<kind>_<checkpoint name>.json``
    (``work_dirs/eval/<kind>_random_init.json`` without a checkpoint)."""
    stem = osp.splitext(osp.basename(checkpoint))[0] if checkpoint else 'random_init'
    root = osp.dirname(osp.abspath(checkpoint)) if checkpoint else 'work_dirs'
    return results_path(root, kind, stem)


def write_results(path: str, kind: str, results: Dict[str, Any], **meta) -> str:
    """Write one evaluation's results (numbers in percent) and where they came from."""
    if kind not in KINDS:
        raise KeyError(f'result kind {kind!r} is not one of {KINDS}.')
    record = dict(kind=kind, results=results,
                  time=datetime.datetime.now().isoformat(timespec='microseconds'), **meta)
    return atomic_write_json(path, record, indent=1, default=str)


def read_results(path: str) -> Dict[str, Any]:
    with open(path) as f:
        record = json.load(f)
    if not isinstance(record, dict) or record.get('kind') not in KINDS or 'results' not in record:
        raise ValueError(f'{path} is not an mmmsf evaluation result (needs "kind" in {KINDS} and '
                         '"results").')
    return record


def find_results(run_dir: str) -> List[Dict[str, Any]]:
    """Every result file in an ``eval`` folder at or below ``run_dir`` (sorted by path)."""
    out = []
    for root, dirs, files in sorted(os.walk(run_dir)):
        dirs.sort()
        if osp.basename(root) != 'eval':
            continue
        for name in sorted(files):
            if name.endswith('.json'):
                rec = read_results(osp.join(root, name))
                rec['file'] = osp.join(root, name)
                out.append(rec)
    return out
