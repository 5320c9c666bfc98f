"""Repeated fine-tuning: the paper's Table 5 reports VOC AP averaged over 5 runs.

Run ``i`` fine-tunes with seed ``base_seed + i`` into ``WORK_DIR/seed<s>``, tests its last
checkpoint with :func:`~mmmsf.detection.finetune.test_detector`, and the driver prints every run
and mean ± standard deviation (sample std, n - 1) of AP50, AP and AP75; the numbers also go to
``WORK_DIR/repeat_results.json``.
"""
import json
import os
import os.path as osp
from typing import Callable, Dict, List, Optional

import numpy as np
from mmengine.config import Config
from mmengine.dist import get_rank

from .finetune import last_checkpoint, test_detector, train_detector

METRICS = ('AP50', 'AP', 'AP75')


def summarise(runs: List[Dict[str, float]]) -> Dict[str, Dict[str, float]]:
    """``{'mean': {AP50, AP, AP75}, 'std': {...}}`` over runs (std is 0 for a single run)."""
    if not runs:
        raise ValueError('no runs to summarise.')
    arr = {m: np.array([r[m] for r in runs], dtype=float) for m in METRICS}
    return dict(mean={m: float(a.mean()) for m, a in arr.items()},
                std={m: float(a.std(ddof=1)) if len(a) > 1 else 0.0 for m, a in arr.items()})


def format_runs(runs: List[Dict[str, float]]) -> str:
    """A table of the runs and a ``mean ± std`` line, as in the paper's Table 5."""
    s = summarise(runs)
    lines = ['| run | seed | ' + ' | '.join(METRICS) + ' |', '|---|---|' + '---|' * len(METRICS)]
    for i, r in enumerate(runs):
        lines.append(f'| {i + 1} | {r.get("seed", "-")} | '
                     + ' | '.join(f'{r[m]:.1f}' for m in METRICS) + ' |')
    lines.append(f'| mean ± std ({len(runs)} runs) | | ' + ' | '.join(
        f'{s["mean"][m]:.1f} ± {s["std"][m]:.1f}' for m in METRICS) + ' |')
    return '\n'.join(lines)


def repeat_finetuning(load_cfg: Callable[[], Config], times: int, work_dir: str,
                      pretrained: Optional[str] = None, scratch: bool = False,
                      base_seed: int = 0, launcher: str = 'none') -> Dict:
    """Fine-tune and test ``times`` times; ``load_cfg`` returns a fresh config for each run."""
    if times < 1:
        raise ValueError(f'--repeat must be >= 1, got {times}.')
    runs = []
    for i in range(times):
        seed = base_seed + i
        run_dir = osp.join(work_dir, f'seed{seed}')
        cfg = load_cfg()
        cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None  # tested right after
        train_detector(cfg, run_dir, pretrained, scratch, seed=seed, launcher=launcher)
        ap = test_detector(load_cfg(), last_checkpoint(run_dir), run_dir, launcher=launcher)
        runs.append(dict(seed=seed, **ap))
    result = dict(runs=runs, **summarise(runs))
    if get_rank() == 0:
        os.makedirs(work_dir, exist_ok=True)
        with open(osp.join(work_dir, 'repeat_results.json'), 'w') as f:
            json.dump(result, f, indent=2)
    return result
