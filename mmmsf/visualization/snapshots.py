"""Reading the snapshots of :class:`~mmmsf.engine.hooks.NeighbourSnapshotHook`."""
import glob
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np


def load_snapshots(work_dir: str, out_dir: str = 'snapshots',
                   epochs: Optional[Sequence[int]] = None) -> List[Dict[str, np.ndarray]]:
    """The snapshots of a run, by epoch; all must share the same pool and queries."""
    folder = osp.join(work_dir, out_dir)
    files = sorted(glob.glob(osp.join(folder, 'epoch_*.npz')))
    if not files:
        raise FileNotFoundError(f'no snapshots in {folder!r}: train with NeighbourSnapshotHook '
                                "in custom_hooks (see configs/demo/) or pass the right work_dir.")
    snaps = []
    for f in files:
        with np.load(f) as data:
            snaps.append({k: data[k] for k in data.files})
    ref = snaps[0]
    for s in snaps[1:]:
        if not (np.array_equal(s['pool_index'], ref['pool_index'])
                and np.array_equal(s['query_pos'], ref['query_pos'])):
            raise ValueError(f'snapshots in {folder} use different image pools (the hook settings '
                             'changed during the run); delete the old ones.')
    if epochs is not None:
        have = {int(s['epoch']): s for s in snaps}
        missing = [e for e in epochs if e not in have]
        if missing:
            raise KeyError(f'no snapshot of epoch(s) {missing}; available: {sorted(have)}.')
        snaps = [have[e] for e in epochs]
    return snaps


def spread(items: Sequence, n: int) -> list:
    """At most ``n`` items evenly spaced, first and last included."""
    items = list(items)
    if len(items) <= n:
        return items
    pos = np.unique(np.round(np.linspace(0, len(items) - 1, n)).astype(int))
    return [items[i] for i in pos]
