"""Label subsets (ImageNet 1% / 10% protocol) as file lists: exactly the listed images."""
import os.path as osp

import numpy as np
import pytest

from mmmsf.apis import load_config
from mmmsf.datasets import ImageFolder
from mmmsf.datasets.label_subset import make_subset_list
from tests.conftest import MINI, ROOT

DEMO10 = osp.join(ROOT, 'configs/benchmarks/linear/linear_r18_cifar10mini_10percent_demo.py')


def test_subset_picks_exactly_the_listed_files(tmp_path):
    listed = ['frog/0007.jpg', 'airplane/0003.jpg', 'ship/0100.jpg', 'airplane/0000.jpg']
    ann = tmp_path / 'subset.txt'
    ann.write_text('# comment lines and blank lines are ignored\n\n' + '\n'.join(listed) + '\n')
    ds = ImageFolder(data_root=MINI, data_prefix='train', ann_file=str(ann))
    classes = ds.metainfo['classes']
    assert len(ds) == 4 and len(classes) == 10  # the classes stay those of the full set
    got = [(osp.relpath(ds.get_data_info(i)['img_path'], osp.join(MINI, 'train')),
            classes[ds.get_data_info(i)['gt_label']]) for i in range(len(ds))]
    assert got == [(p, p.split('/')[0]) for p in listed]  # list order, labels from folders


def test_imagenet_style_bare_file_names(tmp_path):
    """SimCLR's public lists name bare files <wnid>_<n>.JPEG; they resolve to <wnid>/..."""
    import cv2
    for wnid in ('n01440764', 'n01443537'):
        (tmp_path / 'train' / wnid).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(tmp_path / 'train' / wnid / f'{wnid}_{i}.JPEG'),
                        np.full((8, 8, 3), i * 40, np.uint8))
    (tmp_path / '1percent.txt').write_text('n01443537_2.JPEG\nn01440764_0.JPEG\n')
    ds = ImageFolder(data_root=str(tmp_path), data_prefix='train', ann_file='1percent.txt')
    assert [ds.get_data_info(i)['img_path'] for i in range(2)] == [
        str(tmp_path / 'train' / 'n01443537' / 'n01443537_2.JPEG'),
        str(tmp_path / 'train' / 'n01440764' / 'n01440764_0.JPEG')]
    assert [ds.get_data_info(i)['gt_label'] for i in range(2)] == [1, 0]


def test_missing_listed_file_and_missing_list_fail_clearly(tmp_path):
    ann = tmp_path / 'subset.txt'
    ann.write_text('airplane/0000.jpg\nairplane/9999.jpg\n')
    with pytest.raises(FileNotFoundError, match=r'subset.txt:2: listed image .*9999.jpg'):
        ImageFolder(data_root=MINI, data_prefix='train', ann_file=str(ann))
    with pytest.raises(FileNotFoundError, match='ann_file .* does not exist'):
        ImageFolder(data_root=MINI, data_prefix='train', ann_file=str(tmp_path / 'nope.txt'))


def test_class_balanced_lists_and_the_shipped_demo_lists():
    lines = make_subset_list(osp.join(MINI, 'train'), 0.1, seed=0)
    per_class = {}
    for ln in lines:
        per_class[ln.split('/')[0]] = per_class.get(ln.split('/')[0], 0) + 1
    assert set(per_class.values()) == {30} and len(per_class) == 10
    assert lines == make_subset_list(osp.join(MINI, 'train'), 0.1, seed=0)  # reproducible
    assert lines != make_subset_list(osp.join(MINI, 'train'), 0.1, seed=1)
    shipped = osp.join(ROOT, 'configs/benchmarks/linear/subsets/cifar10_mini_10percent.txt')
    assert open(shipped).read().split() == lines  # = tools/make_subset_list.py ... 0.1
    cfg = load_config(DEMO10)
    ds = ImageFolder(**{k: v for k, v in cfg.train_dataloader.dataset.items() if k != 'type'})
    assert len(ds) == 300
    stats = cfg.linear_cfg.stats_dataloader.dataset
    assert stats.ann_file == cfg.train_dataloader.dataset.ann_file  # statistics on the subset
