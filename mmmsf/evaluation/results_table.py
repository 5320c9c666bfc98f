"""A Markdown table of several runs in the shape of the MSF paper's Table 2 (left).

For each run folder (a pre-training work_dir) it gathers:

* kNN (``1-NN``, ``20-NN``) and linear (``top1``) results from the ``eval/*.json`` files
  below it (:mod:`mmmsf.evaluation.results_io`; ``tools/knn_eval.py`` and
  ``tools/linear_eval.py`` write them, and the online kNN validation of pre-training writes
  ``eval/knn.json``), preferring the latest epoch's checkpoint; the kNN cells show the last
  epoch's number and, for the online kNN, the best validated epoch beside it, labelled
  ``(best X @ epoch E)`` (the last epoch is the result; the best is not picked);
* the training-time purity of the last epoch (mean of the logged ``purity``, in %);
* batch size (per-process batch x number of processes) and epochs from the config and log
  mmengine saved in the work_dir.
"""
import glob
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence

from mmmsf.visualization.scalars import load_train_scalars, scalar_per_epoch
from .results_io import find_results

# MSF paper Table 2 (ResNet-50, ImageNet) and CMSF paper (128K bank): (method, batch, epochs,
# linear top-1, 1-NN, 20-NN).
PAPER_ROWS = [
    ('Random-init', None, None, 5.1, 1.5, 2.0),
    ('BYOL-asym', 256, 200, 69.3, 55.0, 59.2),
    ('MSF', 256, 200, 71.4, 60.6, 64.0),
    ('MSF w/s', 256, 200, 72.4, 62.0, 64.9),
    ('MSF w/s (128K)', 256, 200, 72.1, 62.0, 65.2),
    ('MSF w/w', 256, 200, 66.3, 54.6, 57.4),
    ('CMSF-KM (128K)', 256, 200, 72.9, 63.2, 66.2),
    ('CMSF-2Q (128K)', 256, 200, 73.0, 63.2, 66.4),
]
COLUMNS = ('Method', 'Batch Size', 'Epochs', 'Top-1 Linear', 'NN', '20-NN', 'Purity')


def _ckpt_order(rec: Dict) -> tuple:
    m = re.search(r'(?:epoch|iter)_(\d+)', str(rec.get('checkpoint') or ''))
    epoch = int(m.group(1)) if m else rec.get('epoch')  # online kNN: the epoch validated
    return (int(epoch) if isinstance(epoch, (int, float)) else -1, str(rec.get('time', '')))


def latest(records: Sequence[Dict], kind: str) -> Optional[Dict]:
    """The record of ``kind`` for the latest checkpoint (ties: the most recent evaluation)."""
    recs = [r for r in records if r['kind'] == kind]
    return max(recs, key=_ckpt_order) if recs else None


def _run_config(run_dir: str):
    """The config mmengine dumped into the work_dir (the newest ``*.py`` at its top level)."""
    from mmengine.config import Config
    files = sorted(glob.glob(osp.join(run_dir, '*.py')), key=osp.getmtime)
    return Config.fromfile(files[-1]) if files else None


def _world_size(run_dir: str) -> int:
    for log in sorted(glob.glob(osp.join(run_dir, '*', '*.log')), reverse=True):
        with open(log, errors='replace') as f:
            m = re.search(r'GPU number: (\d+)', f.read(200000))
        if m:
            return int(m.group(1))
    return 1


def gather_run(run_dir: str, name: Optional[str] = None) -> Dict:
    """One row: ``{'Method', 'Batch Size', 'Epochs', 'Top-1 Linear', 'NN', '20-NN', 'Purity'}``
    (``None`` where the run has no such number) and ``fast_linear`` (the linear number comes
    from the pre-computed-feature probe, not the paper's protocol)."""
    if not osp.isdir(run_dir):
        raise FileNotFoundError(f'run folder {run_dir!r} does not exist.')
    records = find_results(run_dir)
    # Table 2 is about the full training set: label-subset probes (Table 3) only as a fallback
    full = [r for r in records if not (r['kind'] == 'linear' and r.get('train_subset'))]
    knn, lin = latest(records, 'knn'), latest(full, 'linear') or latest(records, 'linear')
    row = dict.fromkeys(COLUMNS)
    row['Method'] = name or osp.basename(osp.normpath(run_dir))
    if knn:
        row['NN'] = knn['results'].get('1-NN')
        row['20-NN'] = knn['results'].get('20-NN')
        # online kNN (eval/knn.json): the best validated epoch, shown beside the last one
        online = latest([r for r in records if r.get('best')], 'knn')
        best = (online or {}).get('best') or {}
        row['best'] = {col: (best[name]['value'], best[name]['epoch'])
                       for col, name in (('NN', '1-NN'), ('20-NN', '20-NN')) if name in best}
    row['fast_linear'] = False
    if lin:
        row['Top-1 Linear'] = lin['results'].get('top1')
        row['fast_linear'] = bool(lin.get('precomputed_features', False))
    cfg = _run_config(run_dir)
    if cfg is not None and 'train_dataloader' in cfg:
        row['Batch Size'] = cfg.train_dataloader.batch_size * _world_size(run_dir)
        row['Epochs'] = cfg.get('train_cfg', {}).get('max_epochs')
    try:
        epochs, purity = scalar_per_epoch(load_train_scalars(run_dir), 'purity')
        row['Purity'] = 100.0 * float(purity[-1])
    except (FileNotFoundError, KeyError):
        pass
    if not knn and not lin and row['Purity'] is None:
        raise FileNotFoundError(f'{run_dir!r} holds no evaluation results (eval/*.json) and no '
                                'logged purity: run tools/knn_eval.py / tools/linear_eval.py on '
                                'its checkpoint first.')
    return row


def _fmt(v) -> str:
    if v is None:
        return '-'
    return f'{v:.1f}' if isinstance(v, float) else str(v)


def _fmt_best(best) -> str:
    """`` (best 46.0 @ epoch 18)`` beside the last epoch's number; nothing without a best."""
    return '' if best is None else f' (best {best[0]:.1f} @ epoch {best[1]})'


def format_table(rows: List[Dict], paper: bool = False) -> str:
    """Markdown table; ``paper=True`` appends the paper's ImageNet rows for comparison."""
    lines = ['| ' + ' | '.join(COLUMNS) + ' |', '|---|---:|---:|---:|---:|---:|---:|']
    for r in rows:
        cells = [_fmt(r[c]) + ('*' if c == 'Top-1 Linear' and r.get('fast_linear') else '')
                 + _fmt_best((r.get('best') or {}).get(c)) for c in COLUMNS]
        lines.append('| ' + ' | '.join(cells) + ' |')
    if paper:
        for method, batch, epochs, lin, nn1, nn20 in PAPER_ROWS:
            vals = [f'{method} (paper)', batch, epochs, lin, nn1, nn20, None]
            lines.append('| ' + ' | '.join(_fmt(v) for v in vals) + ' |')
    if any(r.get('fast_linear') for r in rows):
        lines += ['', '\\* linear probe on pre-computed features (no training augmentation), '
                  "not the paper's protocol"]
    return '\n'.join(lines)
