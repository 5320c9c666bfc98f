"""Nearest neighbours of fixed query images across epochs (MSF paper Fig. 2).

For each query: one row per saved epoch, the query first, then its k nearest neighbours in the
snapshot pool (nearest first), framed green when their label is the query's, red otherwise.
"""
from typing import Dict, Optional, Sequence

import numpy as np

from .snapshots import load_snapshots, spread


def _read_rgb(path: str) -> np.ndarray:
    import cv2
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise IOError(f'image {path!r} of the snapshot pool cannot be read: the dataset moved; '
                      'restore it at that path.')
    return img[:, :, ::-1]


def plot_neighbours(work_dir: str, out_file: str, queries: Optional[Sequence[int]] = None,
                    epochs: Optional[Sequence[int]] = None, k: Optional[int] = None,
                    max_epochs: int = 6, out_dir: str = 'snapshots') -> Dict:
    """Draw the grid; returns what it drew::

        {'epochs': [e0, ...], 'queries': [query path, ...],
         'neighbours': {epoch: [[neighbour path, ...] per query]},
         'correct': {epoch: [[bool, ...] per query]}}
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    snaps = load_snapshots(work_dir, out_dir, epochs)
    if epochs is None:
        snaps = spread(snaps, max_epochs)
    ref = snaps[0]
    nq = len(ref['query_pos'])
    queries = list(range(min(nq, 4))) if queries is None else list(queries)
    bad = [q for q in queries if not 0 <= q < nq]
    if bad:
        raise IndexError(f'query numbers {bad} out of range: the snapshots hold {nq} queries.')
    k_saved = ref['nn_pos'].shape[1]
    k = k_saved if k is None else k
    if not 1 <= k <= k_saved:
        raise ValueError(f'k={k}: the snapshots hold {k_saved} neighbours per query.')
    paths, labels = ref['pool_path'], ref['pool_label']
    drawn = dict(epochs=[int(s['epoch']) for s in snaps],
                 queries=[str(paths[ref['query_pos'][q]]) for q in queries],
                 neighbours={}, correct={})
    rows = len(queries) * len(snaps)
    fig, axes = plt.subplots(rows, k + 1, figsize=(1.2 * (k + 1), 1.25 * rows), squeeze=False)
    for s in snaps:
        e = int(s['epoch'])
        drawn['neighbours'][e] = [[str(paths[p]) for p in s['nn_pos'][q, :k]] for q in queries]
        drawn['correct'][e] = [[bool(labels[p] == labels[s['query_pos'][q]])
                                for p in s['nn_pos'][q, :k]] for q in queries]
    for qi, q in enumerate(queries):
        qpos = ref['query_pos'][q]
        for ei, s in enumerate(snaps):
            e = int(s['epoch'])
            row = axes[qi * len(snaps) + ei]
            row[0].imshow(_read_rgb(paths[qpos]))
            row[0].set_ylabel(f'epoch {e}', fontsize=7)
            for j in range(k):
                ax = row[j + 1]
                ax.imshow(_read_rgb(paths[s['nn_pos'][q, j]]))
                color = 'tab:green' if drawn['correct'][e][qi][j] else 'tab:red'
                for spine in ax.spines.values():
                    spine.set_edgecolor(color)
                    spine.set_linewidth(2.5)
            for ax in row:
                ax.set_xticks([])
                ax.set_yticks([])
    axes[0][0].set_title('query', fontsize=8)
    for j in range(k):
        axes[0][j + 1].set_title(f'NN {j + 1}', fontsize=8)
    fig.suptitle('Nearest neighbours of fixed queries during training '
                 '(green: same class)', fontsize=9)
    fig.tight_layout()
    fig.savefig(out_file, dpi=120)
    plt.close(fig)
    return drawn
