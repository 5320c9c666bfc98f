"""Purity vs. epoch (MSF paper Fig. 4).

Purity = the share of the k nearest neighbours of the target embedding, the first one (itself)
excluded, that have the query's label; MSF logs it every logging interval as ``purity``. The
curve shows, for each epoch, the mean of the values logged during that epoch.
"""
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .scalars import load_train_scalars, scalar_per_epoch


def plot_purity(work_dirs: Sequence[str], out_file: str, labels: Optional[Sequence[str]] = None,
                key: str = 'purity', title: str = 'Purity of the top-k neighbours (self excluded)'
                ) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """One curve per run; returns ``{label: (epochs, purity in %)}`` exactly as plotted
    (each value: 100 x the mean of that epoch's logged fractions)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    if labels is not None and len(labels) != len(work_dirs):
        raise ValueError(f'{len(labels)} labels for {len(work_dirs)} runs: give one per run.')
    labels = list(labels) if labels is not None else list(work_dirs)
    curves = {}
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for wd, label in zip(work_dirs, labels):
        epochs, values = scalar_per_epoch(load_train_scalars(wd), key)
        values = values * 100.0  # logged as a fraction
        curves[label] = (epochs, values)
        ax.plot(epochs, values, marker='o' if len(epochs) < 30 else None, label=label)
    ax.set_xlabel('epoch')
    ax.set_ylabel(f'{key} (%)')
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_file, dpi=150)
    plt.close(fig)
    return curves
