"""Labelled subsets of a training set as file lists (the ImageNet 1% / 10% protocol, Table 3).

A list names one image per line, relative to the split folder (``<class>/<file>``), optionally
followed by its label; blank lines and lines starting with ``#`` are skipped. One reader
(:func:`read_subset_list`) serves :class:`~mmmsf.datasets.ImageFolder`'s ``ann_file``, the
labelled subset of :class:`~mmmsf.engine.hooks.PseudoLabelHook` and the study; one writer
(:func:`write_subset_list`). The public ImageNet lists (SimCLR's ``1percent.txt`` /
``10percent.txt``) are used as they are; for other datasets :func:`make_subset_list` draws a
class-balanced subset with a fixed seed.
:func:`class_balanced_indices` draws the same number of images of every class of a dataset
(the memory set of the online kNN validation on ImageNet).
"""
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .image_files import IMG_EXTENSIONS


def read_subset_list(path: str) -> List[Tuple[int, str, Optional[str]]]:
    """``(entry number, relative path, label text or None)`` of every entry of the list
    ``path``; entries are numbered from 1, blank and ``#`` lines not counted."""
    with open(path) as f:
        lines = [ln.strip() for ln in f if ln.strip() and not ln.startswith('#')]
    out = []
    for n, line in enumerate(lines, 1):
        parts = line.split()
        out.append((n, parts[0], parts[1] if len(parts) > 1 else None))
    return out


def make_subset_list(img_root: str, fraction: float, seed: int = 0,
                     min_per_class: int = 1) -> List[str]:
    """``round(fraction * n_c)`` (at least ``min_per_class``) images of every class ``c``,
    drawn with ``seed``; relative paths, sorted."""
    if not 0 < fraction <= 1:
        raise ValueError(f'subset fraction {fraction} must be in (0, 1].')
    if not osp.isdir(img_root):
        raise FileNotFoundError(f'{img_root!r} is not a folder of <class>/<image> files.')
    rng = np.random.default_rng(seed)
    out = []
    classes = sorted(d.name for d in os.scandir(img_root) if d.is_dir())
    if not classes:
        raise ValueError(f'{img_root!r} has no class folders.')
    for cls in classes:
        files = sorted(f'{cls}/{name}' for name in os.listdir(osp.join(img_root, cls))
                       if name.lower().endswith(IMG_EXTENSIONS))
        if not files:
            raise ValueError(f'class folder {cls!r} of {img_root!r} holds no image.')
        n = min(len(files), max(min_per_class, int(round(fraction * len(files)))))
        out += [files[i] for i in sorted(rng.choice(len(files), n, replace=False))]
    return sorted(out)


def write_subset_list(lines: List[str], path: str) -> str:
    """Write one entry per line to ``path`` (folders created); returns ``path``."""
    os.makedirs(osp.dirname(osp.abspath(path)) or '.', exist_ok=True)
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def class_balanced_indices(labels: Sequence[int], fraction: Optional[float] = None,
                           per_class: Optional[int] = None, seed: int = 0) -> List[int]:
    """Sorted dataset indices: ``per_class`` images of every class (default
    ``round(fraction * N / num_classes)``, at least 1), all of a class that has fewer; drawn
    with ``seed``, so every process and every epoch gets the same subset."""
    if (fraction is None) == (per_class is None):
        raise ValueError('give exactly one of fraction / per_class for a class-balanced subset.')
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0 or (labels < 0).any():
        raise ValueError('a class-balanced subset needs a labelled dataset (every gt_label '
                         '>= 0); use ImageFolder with with_label=True.')
    classes = np.unique(labels)
    if per_class is None:
        if not 0 < fraction <= 1:
            raise ValueError(f'subset fraction {fraction} must be in (0, 1].')
        per_class = max(1, int(round(fraction * len(labels) / len(classes))))
    if per_class < 1:
        raise ValueError(f'per_class={per_class} must be >= 1.')
    rng = np.random.default_rng(seed)
    out: List[int] = []
    for c in classes:
        members = np.flatnonzero(labels == c)
        n = min(per_class, len(members))
        out += members[np.sort(rng.choice(len(members), n, replace=False))].tolist()
    return sorted(out)
