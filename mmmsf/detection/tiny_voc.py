"""A tiny PASCAL-VOC-format detection set made of real CIFAR-10 objects, for tests and CPU runs.

Each image is a smooth random background (a bicubically upsampled 4x4 colour grid plus mild
noise) onto which 1..``max_objects`` real CIFAR-10 photographs of VOC classes are pasted,
rescaled to ``obj_size`` pixels and not overlapping; each pasted photograph is one ground-truth
box. CIFAR-10 classes map to VOC classes as airplane->aeroplane, automobile->car, bird, cat, dog,
horse, ship->boat (deer, frog, truck have no VOC class and are not used). Training splits take
their objects from ``train/``, the test split from ``test/``, so no object is seen twice.

The output is the standard VOCdevkit layout that mmdet's ``VOCDataset`` reads::

    OUT/VOCdevkit/VOC2007/{JPEGImages, Annotations, ImageSets/Main/{trainval,test}.txt}
    OUT/VOCdevkit/VOC2012/{JPEGImages, Annotations, ImageSets/Main/trainval.txt}

Boxes follow VOC's convention: 1-based inclusive pixel coordinates.
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple
from xml.etree import ElementTree as ET

import cv2
import numpy as np

CIFAR_TO_VOC = {'airplane': 'aeroplane', 'automobile': 'car', 'bird': 'bird', 'cat': 'cat',
                'dog': 'dog', 'horse': 'horse', 'ship': 'boat'}
# (year, split, CIFAR-10 source split, id prefix)
SPLITS = (('VOC2007', 'trainval', 'train', ''), ('VOC2012', 'trainval', 'train', '2012_'),
          ('VOC2007', 'test', 'test', ''))


def _object_files(cifar_root: str, split: str) -> Dict[str, List[str]]:
    files = {}
    for cifar_cls in CIFAR_TO_VOC:
        folder = osp.join(cifar_root, split, cifar_cls)
        if not osp.isdir(folder):
            raise FileNotFoundError(f'{folder!r} is missing: --src must be a CIFAR-10 ImageFolder '
                                    f'(train/ and test/ with one folder per class), e.g. '
                                    'data/cifar10_mini.')
        names = sorted(f for f in os.listdir(folder) if f.lower().endswith(('.jpg', '.png')))
        if not names:
            raise FileNotFoundError(f'{folder!r} holds no .jpg/.png images.')
        files[cifar_cls] = [osp.join(folder, n) for n in names]
    return files


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    grid = rng.uniform(40, 215, size=(4, 4, 3)).astype(np.float32)
    img = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 6, size=img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _place(rng: np.random.Generator, canvas: int, sizes: Sequence[Tuple[int, int]],
           tries: int = 50) -> Optional[List[Tuple[int, int]]]:
    """Top-left corners for non-overlapping boxes of ``sizes`` (w, h), or None."""
    corners: List[Tuple[int, int, int, int]] = []
    for w, h in sizes:
        for _ in range(tries):
            x, y = int(rng.integers(0, canvas - w + 1)), int(rng.integers(0, canvas - h + 1))
            if all(x + w <= a or a + c <= x or y + h <= b or b + d <= y
                   for a, b, c, d in corners):
                corners.append((x, y, w, h))
                break
        else:
            return None
    return [(x, y) for x, y, _, _ in corners]


def _annotation(filename: str, canvas: int, objects: List[Tuple[str, Tuple[int, ...]]]) -> ET:
    root = ET.Element('annotation')
    ET.SubElement(root, 'folder').text = 'VOC'
    ET.SubElement(root, 'filename').text = filename
    size = ET.SubElement(root, 'size')
    for tag, val in (('width', canvas), ('height', canvas), ('depth', 3)):
        ET.SubElement(size, tag).text = str(val)
    ET.SubElement(root, 'segmented').text = '0'
    for name, (x1, y1, x2, y2) in objects:
        obj = ET.SubElement(root, 'object')
        ET.SubElement(obj, 'name').text = name
        ET.SubElement(obj, 'pose').text = 'Unspecified'
        ET.SubElement(obj, 'truncated').text = '0'
        ET.SubElement(obj, 'difficult').text = '0'
        box = ET.SubElement(obj, 'bndbox')
        for tag, val in zip(('xmin', 'ymin', 'xmax', 'ymax'), (x1, y1, x2, y2)):
            ET.SubElement(box, tag).text = str(val)
    return ET.ElementTree(root)


def make_tiny_voc(src: str, out: str, num_images: Sequence[int] = (24, 24, 24),
                  canvas: int = 160, obj_size: Tuple[int, int] = (40, 72),
                  max_objects: int = 2, seed: int = 0) -> Dict[str, Dict[str, int]]:
    """Write the tiny VOCdevkit under ``out``; return ``{split: {class: boxes}}``.

    Args:
        src: CIFAR-10 ImageFolder root (``data/cifar10_mini``).
        out: output folder (``OUT/VOCdevkit`` is created).
        num_images: images in VOC2007 trainval, VOC2012 trainval and VOC2007 test.
        canvas: image side in pixels.
        obj_size: range of the pasted objects' side in pixels (aspect ratio 0.75..1.33).
        max_objects: objects per image are drawn uniformly from 1..max_objects.
    """
    if len(num_images) != len(SPLITS) or min(num_images) < 1:
        raise ValueError(f'num_images needs {len(SPLITS)} positive counts (VOC2007 trainval, '
                         f'VOC2012 trainval, VOC2007 test), got {num_images}.')
    if not 8 <= obj_size[0] <= obj_size[1] <= canvas // 2:
        raise ValueError(f'obj_size {obj_size} must lie within 8..canvas/2 ({canvas // 2}).')
    rng = np.random.default_rng(seed)
    classes = list(CIFAR_TO_VOC)
    pools = {s: _object_files(src, s) for s in ('train', 'test')}
    cursor = {(s, c): 0 for s in pools for c in classes}
    order = {(s, c): rng.permutation(len(pools[s][c])) for s in pools for c in classes}
    stats: Dict[str, Dict[str, int]] = {}
    devkit = osp.join(out, 'VOCdevkit')
    next_id: Dict[str, int] = {}
    for (year, split, cifar_split, prefix), count in zip(SPLITS, num_images):
        root = osp.join(devkit, year)
        for sub in ('JPEGImages', 'Annotations', osp.join('ImageSets', 'Main')):
            os.makedirs(osp.join(root, sub), exist_ok=True)
        ids, counts = [], {CIFAR_TO_VOC[c]: 0 for c in classes}
        deck: List[str] = []
        for _ in range(count):
            next_id[year] = next_id.get(year, 0) + 1
            img_id = f'{prefix}{next_id[year]:06d}'
            k = int(rng.integers(1, max_objects + 1))
            sizes = []
            for _ in range(k):
                side = int(rng.integers(obj_size[0], obj_size[1] + 1))
                aspect = float(rng.uniform(0.75, 4 / 3))
                sizes.append((max(8, min(canvas, round(side * aspect ** 0.5))),
                              max(8, min(canvas, round(side / aspect ** 0.5)))))
            corners = _place(rng, canvas, sizes) or _place(rng, canvas, sizes[:1])
            img = _background(rng, canvas)
            objects = []
            for (x, y), (w, h) in zip(corners, sizes):
                if not deck:  # classes in shuffled rounds: every class about equally often
                    deck = list(rng.permutation(classes))
                cls = str(deck.pop())
                i = cursor[(cifar_split, cls)]
                cursor[(cifar_split, cls)] = (i + 1) % len(order[(cifar_split, cls)])
                path = pools[cifar_split][cls][order[(cifar_split, cls)][i]]
                obj = cv2.imread(path, cv2.IMREAD_COLOR)
                if obj is None:
                    raise ValueError(f'{path} is not a readable image.')
                img[y:y + h, x:x + w] = cv2.resize(obj, (w, h), interpolation=cv2.INTER_CUBIC)
                objects.append((CIFAR_TO_VOC[cls], (x + 1, y + 1, x + w, y + h)))
                counts[CIFAR_TO_VOC[cls]] += 1
            cv2.imwrite(osp.join(root, 'JPEGImages', img_id + '.jpg'), img,
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            _annotation(img_id + '.jpg', canvas, objects).write(
                osp.join(root, 'Annotations', img_id + '.xml'))
            ids.append(img_id)
        with open(osp.join(root, 'ImageSets', 'Main', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(ids) + '\n')
        stats[f'{year}/{split}'] = counts
    return stats
