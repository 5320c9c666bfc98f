"""Checking the PASCAL VOC folder layout before mmdet reads it.

Expected (paper Table 5: trainval07+12 for training, test07 for testing)::

    VOCdevkit/
      VOC2007/{Annotations, JPEGImages, ImageSets/Main/{trainval,test}.txt}
      VOC2012/{Annotations, JPEGImages, ImageSets/Main/trainval.txt}

mmdet would fail deep inside its XML parser on the first absent file; here the first missing
folder or file is named, with the fix.
"""
import os.path as osp
from typing import Iterator, List

from mmengine.config import Config

VOC_DATASET_TYPES = ('VOCDataset', 'mmdet.VOCDataset')
FIX = ('put the VOCdevkit (VOC2007 + VOC2012) there or pass --data-root DIR; '
       '`python tools/data/make_tiny_voc.py` writes a small one for a CPU smoke run')


def check_voc_split(data_root: str, ann_file: str, sub_data_root: str,
                    img_subdir: str = 'JPEGImages', ann_subdir: str = 'Annotations') -> int:
    """Raise ``FileNotFoundError`` naming the first missing folder or file of one VOC split;
    return its number of images."""
    if not osp.isdir(data_root):
        raise FileNotFoundError(f'VOC data root {data_root!r} does not exist: {FIX}.')
    sub = osp.join(data_root, sub_data_root)
    if not osp.isdir(sub):
        raise FileNotFoundError(f'{sub!r} is missing: the VOC data root must hold '
                                f'{osp.basename(osp.normpath(sub))}/; {FIX}.')
    split = osp.join(data_root, ann_file)
    for path in (osp.join(sub, img_subdir), osp.join(sub, ann_subdir), osp.dirname(split)):
        if not osp.isdir(path):
            raise FileNotFoundError(f'folder {path!r} is missing (a VOC year folder holds '
                                    f'{img_subdir}/, {ann_subdir}/ and ImageSets/Main/).')
    if not osp.isfile(split):
        raise FileNotFoundError(f'split file {split!r} is missing (ImageSets/Main/'
                                f'{osp.basename(ann_file)} lists the image ids of the split).')
    with open(split) as f:
        ids = [line.strip() for line in f if line.strip()]
    if not ids:
        raise ValueError(f'split file {split!r} lists no image ids.')
    for kind, folder, ext in (('annotation', ann_subdir, '.xml'), ('image', img_subdir, '.jpg')):
        absent = [i for i in ids if not osp.isfile(osp.join(sub, folder, i + ext))]
        if absent:
            raise FileNotFoundError(
                f'{len(absent)} of the {len(ids)} images listed in {split!r} have no {kind} '
                f'file, e.g. {osp.join(sub, folder, absent[0] + ext)!r}: restore the files or '
                'remove their ids from the split file.')
    return len(ids)


def _voc_datasets(node) -> Iterator[dict]:
    if isinstance(node, dict):
        if node.get('type') in VOC_DATASET_TYPES:
            yield node
        for v in node.values():
            yield from _voc_datasets(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            yield from _voc_datasets(v)


def check_voc_layout(cfg: Config, dataloaders: List[str] = ('train_dataloader',
                                                           'test_dataloader')) -> int:
    """Check every ``VOCDataset`` of the given dataloaders of ``cfg``; return the image count."""
    total = 0
    for name in dataloaders:
        loader = cfg.get(name)
        if loader is None:
            continue
        for ds in _voc_datasets(loader.get('dataset')):
            prefix = ds.get('data_prefix') or {}
            total += check_voc_split(ds.get('data_root') or '', ds['ann_file'],
                                     prefix.get('sub_data_root', ''),
                                     ds.get('img_subdir', 'JPEGImages'),
                                     ds.get('ann_subdir', 'Annotations'))
    return total
