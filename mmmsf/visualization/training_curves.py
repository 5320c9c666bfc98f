"""Per-epoch curves of pre-training runs in one PNG: loss, purity, online kNN top-1, learning
rate and the collapse monitor, several runs overlaid (``tools/analysis/plot_curves.py``).

Training scalars (``loss``, ``purity``, ``lr``, ``target_std``) are logged every logging
interval; each point is the mean of the values logged during that epoch. The kNN points are the
online validation's ``knn/top1@k`` (one per validated epoch, :class:`~mmmsf.engine.runner.
KNNValLoop`). ``target_std`` is the per-dimension standard deviation of the unit target
embeddings: ``1/sqrt(D)`` when they are spread, 0 when they have collapsed to one point.
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .scalars import load_train_scalars, load_val_scalars, scalar_per_epoch

Curve = Tuple[np.ndarray, np.ndarray]
# (panel title, y label, [(curve key, logged scalar, scale)]): training scalars (per-epoch
# means) and validation metrics (``val:`` prefix, one value per validated epoch)
PANELS = (
    ('loss', 'loss', [('loss', 'loss', 1.0)]),
    ('purity of the top-k', 'purity (%)', [('purity', 'purity', 100.0)]),
    ('online kNN top-1', 'top-1 (%)', [('1-NN', 'val:knn/top1@1', 1.0),
                                       ('20-NN', 'val:knn/top1@20', 1.0)]),
    ('learning rate', 'lr', [('lr', 'lr', 1.0)]),
    ('collapse monitor: std of targets', 'target_std', [('target_std', 'target_std', 1.0)]),
)


def run_curves(work_dir: str) -> Dict[str, Curve]:
    """``{curve key: (epochs, values)}`` of one run, for the curves it logged."""
    train = load_train_scalars(work_dir)
    val = load_val_scalars(work_dir)
    out: Dict[str, Curve] = {}
    for _, _, curves in PANELS:
        for key, scalar, scale in curves:
            if scalar.startswith('val:'):
                name = scalar[4:]
                pts = [(int(r['step']), float(r[name])) for r in val if name in r]
                if pts:
                    e, v = zip(*pts)
                    out[key] = (np.array(e), np.array(v) * scale)
            else:
                try:
                    e, v = scalar_per_epoch(train, scalar)
                except KeyError:
                    continue
                out[key] = (e, v * scale)
    if not out:
        raise KeyError(f'{work_dir!r} logged none of loss, purity, knn/top1@k, lr, target_std.')
    return out


def draw_training_curves(work_dirs: Sequence[str], labels: Optional[Sequence[str]] = None):
    """(matplotlib figure, ``{label: run_curves}``): one panel per quantity, a line per run
    (kNN: solid 20-NN, dashed 1-NN)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    if not work_dirs:
        raise ValueError('give at least one work_dir.')
    if labels is not None and len(labels) != len(work_dirs):
        raise ValueError(f'{len(labels)} labels for {len(work_dirs)} runs: give one per run.')
    labels = list(labels) if labels is not None else [
        osp.basename(osp.normpath(w)) for w in work_dirs]
    data = {lab: run_curves(wd) for wd, lab in zip(work_dirs, labels)}
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator
    fig, grid = plt.subplots(2, 3, figsize=(11, 6))
    axes = grid.ravel()
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for ax, (title, ylabel, curves) in zip(axes, PANELS):
        drawn = False
        for i, (lab, run) in enumerate(data.items()):
            for key, _, _ in curves:
                if key not in run:
                    continue
                e, v = run[key]
                ax.plot(e, v, color=colours[i % len(colours)],
                        linestyle='--' if key == '1-NN' else '-',
                        marker='o' if len(e) <= 30 else None, markersize=3,
                        label=lab if len(curves) == 1 else f'{lab} {key}')
                drawn = True
        ax.set_title(title, fontsize=10)
        ax.set_xlabel('epoch')
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.ticklabel_format(axis='y', useOffset=False, style='plain')
        ax.grid(alpha=0.3)
        if not drawn:
            ax.text(0.5, 0.5, 'not logged', ha='center', va='center', transform=ax.transAxes,
                    color='grey')
    # the last cell: which colour is which run, which line style which k
    key_ax = axes[len(PANELS)]
    key_ax.axis('off')
    handles = [Line2D([], [], color=colours[i % len(colours)], label=lab)
               for i, lab in enumerate(data)]
    handles += [Line2D([], [], color='k', linestyle='-', label='kNN: 20-NN'),
                Line2D([], [], color='k', linestyle='--', label='kNN: 1-NN')]
    key_ax.legend(handles=handles, loc='center', fontsize=9, frameon=False)
    fig.tight_layout()
    return fig, data


def plot_training_curves(work_dirs: Sequence[str], out_file: str,
                         labels: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, Curve]]:
    """Write the curves of ``work_dirs`` to ``out_file`` (PNG); returns what was plotted."""
    import matplotlib.pyplot as plt
    fig, data = draw_training_curves(work_dirs, labels)
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    fig.savefig(out_file, dpi=120)
    plt.close(fig)
    return data


def summary_lines(data: Dict[str, Dict[str, Curve]]) -> List[str]:
    """One line per run: its last epoch's value of every curve."""
    lines = []
    for lab, run in data.items():
        parts = [f'{k} {v[-1]:.4g} (ep {int(e[-1])})' for k, (e, v) in run.items()]
        lines.append(f'{lab}: ' + ', '.join(parts))
    return lines
