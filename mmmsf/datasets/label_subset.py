"""Labelled subsets of a training set as file lists (the ImageNet 1% / 10% protocol, Table 3).

A list names one image per line, relative to the split folder (``<class>/<file>``), optionally
followed by its label; blank lines and lines starting with ``#`` are skipped. One reader
(:func:`read_subset_list`) serves :class:`~mmmsf.datasets.ImageFolder`'s ``ann_file``, the
labelled subset of :class:`~mmmsf.engine.hooks.PseudoLabelHook` and the study; one writer
(:func:`write_subset_list`). The public ImageNet lists (SimCLR's ``1percent.txt`` /
``10percent.txt``) are used as they are; for other datasets :func:`make_subset_list` draws a
class-balanced subset with a fixed seed.
"""
import os
import os.path as osp
from typing import List, Optional, Tuple

import numpy as np


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
    from .image_folder import IMG_EXTENSIONS
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
