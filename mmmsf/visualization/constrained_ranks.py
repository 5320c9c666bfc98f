"""Histogram of the ranks of CMSF's constrained neighbours at several stages of training
(CMSF paper, "Histogram of constrained samples").

Input: ``<work_dir>/constrained_ranks/epoch_XXXX.npz`` written by
:class:`~mmmsf.engine.hooks.ConstrainedRankHook` (``counts[r]`` = constrained neighbours at
rank r in the unconstrained order of the memory bank). Ranks span 1 .. bank size, so the bins
are logarithmic; each curve shows the fraction of that epoch's constrained neighbours per bin.
"""
import glob
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .snapshots import spread


def load_rank_counts(work_dir: str, out_dir: str = 'constrained_ranks') -> Dict[int, np.ndarray]:
    files = sorted(glob.glob(osp.join(work_dir, out_dir, 'epoch_*.npz')))
    if not files:
        raise FileNotFoundError(
            f'no rank histograms in {osp.join(work_dir, out_dir)!r}: train CMSF with '
            "ConstrainedRankHook in custom_hooks (CMSF with rank_stats=True publishes the ranks).")
    out = {}
    for f in files:
        with np.load(f) as d:
            out[int(d['epoch'])] = d['counts'].astype(np.int64)
    return out


def rank_histogram(counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Fraction of the counted neighbours whose rank r falls in ``[edges[i], edges[i+1])``."""
    ranks = np.arange(len(counts))
    hist, _ = np.histogram(ranks, bins=edges, weights=counts)
    total = counts[1:].sum()
    return hist / total if total else hist


def plot_constrained_ranks(work_dir: str, out_file: str, epochs: Optional[Sequence[int]] = None,
                           num_bins: int = 30, max_curves: int = 5,
                           out_dir: str = 'constrained_ranks'
                           ) -> Dict[int, Tuple[np.ndarray, np.ndarray]]:
    """Returns ``{epoch: (bin edges, fraction per bin)}`` exactly as plotted."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    counts = load_rank_counts(work_dir, out_dir)
    if epochs is None:
        epochs = spread(sorted(counts), max_curves)
    missing = [e for e in epochs if e not in counts]
    if missing:
        raise KeyError(f'no rank histogram of epoch(s) {missing}; available: {sorted(counts)}.')
    max_rank = max(len(counts[e]) - 1 for e in epochs)
    edges = np.unique(np.round(np.logspace(0, np.log10(max_rank + 1), num_bins + 1)))
    edges[-1] = max_rank + 1  # the last bin includes the largest rank
    drawn = {}
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for e in epochs:
        frac = rank_histogram(counts[e], edges)
        drawn[e] = (edges, frac)
        ax.stairs(frac, edges, label=f'epoch {e}')
    ax.set_xscale('log')
    ax.set_xlabel('rank in the unconstrained order of the memory bank')
    ax.set_ylabel('fraction of constrained neighbours')
    ax.set_title('Ranks of the constrained neighbours', fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_file, dpi=150)
    plt.close(fig)
    return drawn
