"""Epoch-wise t-SNE of L2-normalised embeddings of a few classes (MSF paper Table 2, right).

Embeddings come from the run's snapshots (:class:`~mmmsf.engine.hooks.NeighbourSnapshotHook`,
``save_embeddings=True``) or from checkpoints
(:func:`mmmsf.apis.evaluate.embeddings_from_checkpoint`).
"""
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .snapshots import load_snapshots, spread


def pick_classes(labels: np.ndarray, num_classes: int,
                 classes: Optional[Sequence[int]] = None) -> np.ndarray:
    """The given class ids, or the ``num_classes`` most frequent ones (ties: lower id)."""
    present = np.unique(labels[labels >= 0])
    if classes is not None:
        missing = [c for c in classes if c not in present]
        if missing:
            raise ValueError(f'classes {missing} have no image in the pool; present: '
                             f'{present.tolist()}.')
        return np.array(sorted(classes))
    counts = np.array([(labels == c).sum() for c in present])
    order = np.lexsort((present, -counts))
    return np.sort(present[order[:num_classes]])


def tsne_2d(x: np.ndarray, seed: int = 0, perplexity: float = 30.0,
            max_iter: int = 1000) -> np.ndarray:
    """scikit-learn t-SNE to 2-D (PCA initialisation, fixed seed)."""
    from sklearn.manifold import TSNE
    if len(x) < 3:
        raise ValueError(f't-SNE needs at least 3 points, got {len(x)}: pick more classes or a '
                         'larger pool.')
    p = min(perplexity, (len(x) - 1) / 3)
    return TSNE(n_components=2, init='pca', perplexity=p, random_state=seed,
                max_iter=max_iter).fit_transform(x.astype(np.float32))


def plot_tsne_panels(panels: Dict[str, Tuple[np.ndarray, np.ndarray]], out_file: str,
                     class_names: Optional[Dict[int, str]] = None, seed: int = 0,
                     max_iter: int = 1000) -> Dict[str, Dict[str, np.ndarray]]:
    """One t-SNE panel per entry ``{title: (embeddings (N, D), labels (N,))}``; returns
    ``{title: {'input': embeddings, 'labels': labels, 'xy': 2-D points}}`` as drawn."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.4), squeeze=False)
    drawn = {}
    all_classes = sorted({int(c) for _, (_, y) in panels.items() for c in np.unique(y)})
    cmap = plt.get_cmap('tab10' if len(all_classes) <= 10 else 'tab20')
    colors = {c: cmap(i % cmap.N) for i, c in enumerate(all_classes)}
    for ax, (title, (x, y)) in zip(axes[0], panels.items()):
        xy = tsne_2d(x, seed, max_iter=max_iter)
        drawn[title] = dict(input=x, labels=y, xy=xy)
        for c in all_classes:
            m = y == c
            name = class_names.get(c, str(c)) if class_names else str(c)
            ax.scatter(xy[m, 0], xy[m, 1], s=6, color=colors[c], label=name)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][-1].legend(fontsize=6, markerscale=2, loc='center left', bbox_to_anchor=(1, 0.5))
    fig.tight_layout()
    fig.savefig(out_file, dpi=150)
    plt.close(fig)
    return drawn


def plot_tsne(work_dir: str, out_file: str, epochs: Optional[Sequence[int]] = None,
              num_classes: int = 10, classes: Optional[Sequence[int]] = None,
              max_panels: int = 4, seed: int = 0, out_dir: str = 'snapshots',
              max_iter: int = 1000) -> Dict:
    """t-SNE panels of the snapshot embeddings of a few classes at several epochs."""
    snaps = load_snapshots(work_dir, out_dir, epochs)
    if 'embedding' not in snaps[0]:
        raise KeyError('the snapshots hold no embeddings: train with '
                       'NeighbourSnapshotHook(save_embeddings=True).')
    if epochs is None:
        snaps = spread(snaps, max_panels)
    labels = snaps[0]['pool_label']
    keep_classes = pick_classes(labels, num_classes, classes)
    mask = np.isin(labels, keep_classes)
    panels = {f"epoch {int(s['epoch'])}": (s['embedding'][mask].astype(np.float32), labels[mask])
              for s in snaps}
    names = snaps[0].get('classes')
    names = {i: str(n) for i, n in enumerate(names)} if names is not None and len(names) else None
    return plot_tsne_panels(panels, out_file, names, seed=seed, max_iter=max_iter)
