"""ImageFolder / file-list dataset passing each sample's index and label to the model.

Layouts accepted (``data_root`` + ``data_prefix``):

* a folder ``<class>/<image>`` (torchvision's ImageFolder; classes sorted by name), or
* an ``ann_file`` listing one image per line, ``relative/path.jpg [label]``, relative to the
  split folder -- the format of the public ImageNet 1% / 10% subset lists (SimCLR's lists,
  which name bare files ``n01440764_10026.JPEG``, are read as ``n01440764/n01440764_10026.JPEG``;
  the names are resolved by :func:`~mmmsf.datasets.label_subset.resolve_subset_list`).
  Without a label column the label is the image's class folder.
"""
import os
import os.path as osp
from typing import List, Optional, Sequence

from mmengine.dataset import BaseDataset

from mmmsf.registry import DATASETS
from .image_files import IMG_EXTENSIONS
from .label_subset import resolve_subset_list
from .sample_seed import aug_seed_of, seeded_random


@DATASETS.register_module()
class ImageFolder(BaseDataset):
    """Images in class sub-folders, or the subset named by an ``ann_file`` list.

    Args:
        data_root: dataset root, e.g. ``data/imagenet``.
        data_prefix: split folder under the root, e.g. ``'train'`` (or ``dict(img_path=...)``).
        ann_file: optional list file (relative to ``data_root``) restricting the images.
        classes: optional class names (default: sorted sub-folder names).
        with_label: attach ``gt_label`` (set False for label-free pre-training data).
    """

    def __init__(self, data_root: str, data_prefix='', ann_file: str = '',
                 classes: Optional[Sequence[str]] = None, with_label: bool = True,
                 pipeline: Sequence = (), **kwargs):
        if isinstance(data_prefix, str):
            data_prefix = dict(img_path=data_prefix)
        self.with_label = with_label
        self._classes = list(classes) if classes is not None else None
        super().__init__(data_root=data_root, data_prefix=data_prefix, ann_file=ann_file,
                         pipeline=list(pipeline), **kwargs)

    def __getitem__(self, idx: int) -> dict:
        """The sample at ``idx``; an index from :class:`~mmmsf.datasets.ResumableSampler`
        carries its augmentation seed, under which the pipeline runs."""
        with seeded_random(aug_seed_of(idx)):
            return super().__getitem__(int(idx))

    @property
    def img_root(self) -> str:
        return self.data_prefix['img_path']

    def _find_classes(self) -> List[str]:
        if self._classes is not None:
            return self._classes
        if not osp.isdir(self.img_root):
            raise FileNotFoundError(f'dataset folder {self.img_root!r} does not exist: fix '
                                    'data_root / data_prefix in the config (or --data-root).')
        return sorted(d.name for d in os.scandir(self.img_root) if d.is_dir())

    def load_data_list(self) -> List[dict]:
        classes = self._find_classes()
        cls_to_idx = {c: i for i, c in enumerate(classes)}
        self._metainfo['classes'] = tuple(classes)
        data_list = []
        if self.ann_file:
            if not osp.isfile(self.ann_file):
                raise FileNotFoundError(f'ann_file {self.ann_file!r} does not exist: fix the '
                                        'path of the subset list in the config.')
            for ln_no, rel, listed_label in resolve_subset_list(self.ann_file, self.img_root):
                path = osp.join(self.img_root, rel)
                if listed_label is not None:
                    label = int(listed_label)
                else:
                    cls = rel.split('/')[0]
                    if cls not in cls_to_idx:
                        raise ValueError(f'{self.ann_file}:{ln_no}: class folder {cls!r} of '
                                         f'{rel!r} is not one of the dataset classes.')
                    label = cls_to_idx[cls]
                data_list.append(self._entry(path, label))
        else:
            empty = []
            for cls in classes:
                folder = osp.join(self.img_root, cls)
                before = len(data_list)
                for root, _, files in sorted(os.walk(folder, followlinks=True)):
                    for name in sorted(files):
                        if name.lower().endswith(IMG_EXTENSIONS):
                            data_list.append(self._entry(osp.join(root, name), cls_to_idx[cls]))
                if len(data_list) == before:
                    empty.append(folder)
            if empty and data_list:
                # an empty class would still take a label and shift every later class's
                raise ValueError(
                    f'class folder {empty[0]!r} holds no image (extensions {IMG_EXTENSIONS})'
                    + (f', nor do {len(empty) - 1} more' if len(empty) > 1 else '')
                    + ': add its images or delete the folder.')
        if not data_list:
            raise ValueError(f'no images found in {self.img_root!r}'
                             f'{" (list " + self.ann_file + ")" if self.ann_file else ""}: the '
                             'folder must hold <class>/<image> files with extensions '
                             f'{IMG_EXTENSIONS}; fix data_root / data_prefix.')
        return data_list

    def _entry(self, path: str, label: int) -> dict:
        info = dict(img_path=path)
        if self.with_label:
            info['gt_label'] = label
        return info

    @property
    def labels(self) -> List[int]:
        return [self.get_data_info(i).get('gt_label', -1) for i in range(len(self))]
