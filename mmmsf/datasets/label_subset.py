"""Labelled subsets of a training set as file lists (the ImageNet 1% / 10% protocol, Table 3).

A list names one image per line, relative to the split folder (``<class>/<file>``), optionally
followed by its label; blank lines and lines starting with ``#`` are skipped. One reader
(:func:`read_subset_list`) and one rule for the names in it (:func:`resolve_subset_list`) serve
:class:`~mmmsf.datasets.ImageFolder`'s ``ann_file``, the labelled subset of
:class:`~mmmsf.engine.hooks.PseudoLabelHook` and the study; one writer
(:func:`write_subset_list`). The public ImageNet lists (SimCLR's ``1percent.txt`` /
``10percent.txt``, bare names ``n01440764_10026.JPEG``) are used as they are; for other
datasets :func:`make_subset_list` draws a class-balanced subset with a fixed seed.
:func:`class_balanced_indices` draws the same number of images of every class of a dataset
(the memory set of the online kNN validation on ImageNet).
"""
import os
import os.path as osp
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .image_files import IMG_EXTENSIONS


def read_subset_list(path: str) -> List[Tuple[int, str, Optional[str]]]:
    """``(line number, relative path, label text or None)`` of every entry of the list
    ``path``; lines are numbered from 1 as in an editor, blank and ``#`` lines are skipped."""
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip() or line.startswith('#'):
                continue
            parts = line.split()
            out.append((n, parts[0], parts[1] if len(parts) > 1 else None))
    return out


#: What a subset-list entry may be, as the error message says it.
ACCEPTED_FORMS = ("'<class>/<file>' relative to the split folder ('\\' or '/'), a bare SimCLR "
                  "name '<wnid>_<n>.JPEG' (read as '<wnid>/<wnid>_<n>.JPEG'), or a bare file "
                  "name that exactly one image has")


class SubsetListError(FileNotFoundError, ValueError):
    """A subset-list entry names no image (a missing file and a bad list line alike)."""


def resolve_subset_list(path: str, root: str, images: Optional[Iterable[str]] = None,
                        where: Optional[str] = None) -> List[Tuple[int, str, Optional[str]]]:
    """``(line number, image path relative to root, label text or None)`` of every entry of
    the list ``path``, each name resolved to the image it means.

    An entry is, tried in this order: a path relative to ``root`` (``\\`` read as ``/``); a
    bare SimCLR name ``<wnid>_<n>.JPEG``, read as ``<wnid>/<wnid>_<n>.JPEG``; a bare file name
    that exactly one image has, in any folder. The images are the files under ``root``, or
    ``images`` (relative paths) when given, e.g. those of a dataset.

    Raises:
        SubsetListError: naming the list, the entry and the accepted forms, for the first entry
            that matches no image (or, a bare name, several).
    """
    if images is None:
        def is_image(rel: str) -> bool:
            return osp.isfile(osp.join(root, rel))
        named = _lazy(lambda: _by_file_name(_image_files(root)))  # a scan only if needed
        where = where or f'the folder {root!r}'
    else:
        known = set(images)
        is_image = known.__contains__
        named = _lazy(lambda: _by_file_name(known))
        where = where or f'the {len(known)} images under {root!r}'
    out = []
    for n, entry, label in read_subset_list(path):
        rel = _resolve_name(entry, is_image, named)
        if rel is None:
            same = named().get(entry, []) if '/' not in entry.replace('\\', '/') else []
            why = (f'names {len(same)} images ({", ".join(sorted(same)[:2])}, ...)'
                   if len(same) > 1 else f'matches no image of {where}')
            raise SubsetListError(
                f'{path}:{n}: listed image {entry!r} {why}. An entry is {ACCEPTED_FORMS}: fix '
                'the list, or the data_root / data_prefix it is relative to.')
        out.append((n, rel, label))
    return out


def _resolve_name(entry: str, is_image: Callable[[str], bool],
                  named: Callable[[], Dict[str, List[str]]]) -> Optional[str]:
    """The image (relative path) ``entry`` names under :func:`resolve_subset_list`'s rule."""
    rel = entry.replace('\\', '/')
    if is_image(rel):
        return rel
    if '/' in rel:
        return None
    if '_' in rel and is_image(f"{rel.split('_')[0]}/{rel}"):  # SimCLR's 1% / 10% lists
        return f"{rel.split('_')[0]}/{rel}"
    same = named().get(rel, [])
    return same[0] if len(same) == 1 else None


def _lazy(make: Callable[[], Dict[str, List[str]]]) -> Callable[[], Dict[str, List[str]]]:
    """``make()``, computed on the first call only."""
    cache: List[Dict[str, List[str]]] = []

    def get() -> Dict[str, List[str]]:
        if not cache:
            cache.append(make())
        return cache[0]
    return get


def _image_files(root: str) -> List[str]:
    """Relative paths (``/``-separated) of every image file under ``root``."""
    out = []
    for folder, _, files in os.walk(root, followlinks=True):
        rel = osp.relpath(folder, root).replace('\\', '/')
        out += [name if rel == '.' else f'{rel}/{name}' for name in files
                if name.lower().endswith(IMG_EXTENSIONS)]
    return out


def _by_file_name(rels: Iterable[str]) -> Dict[str, List[str]]:
    """Relative paths grouped by file name."""
    out: Dict[str, List[str]] = {}
    for rel in rels:
        out.setdefault(rel.rsplit('/', 1)[-1], []).append(rel)
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
