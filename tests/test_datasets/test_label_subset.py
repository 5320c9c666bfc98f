"""One subset-list reader for the dataset, the pseudo-label hook and the study."""
import re

import numpy as np
import pytest

from mmmsf.datasets import ImageFolder
from mmmsf.datasets.label_subset import (ACCEPTED_FORMS, SubsetListError, read_subset_list,
                                         resolve_subset_list, write_subset_list)
from mmmsf.engine.hooks.pseudo_label_hook import read_labelled_list


def test_entries_skip_blank_and_comment_lines(tmp_path):
    p = tmp_path / 'l.txt'
    p.write_text('# header\nclass0/000.jpg\n\n  class1/001.jpg 1\nclass2/002.jpg\n')
    assert read_subset_list(str(p)) == [(2, 'class0/000.jpg', None), (4, 'class1/001.jpg', '1'),
                                        (5, 'class2/002.jpg', None)]  # the file's line numbers


def test_dataset_and_hook_read_the_same_images(image_folder, tmp_path):
    lst = write_subset_list(['class0/001.jpg', '# comment', 'class2/004.jpg'],
                            str(tmp_path / 'sub' / 'list.txt'))
    subset = ImageFolder(data_root=str(image_folder), data_prefix='train', ann_file=lst)
    full = ImageFolder(data_root=str(image_folder), data_prefix='train')
    idx = read_labelled_list(lst, full)
    assert [full.get_data_info(i)['img_path'] for i in idx] == \
        [subset.get_data_info(i)['img_path'] for i in range(len(subset))]
    with pytest.raises(FileNotFoundError, match=r'list.txt:2: listed image'):
        write_subset_list(['class0/001.jpg', 'class9/123.jpg'], lst)
        ImageFolder(data_root=str(image_folder), data_prefix='train', ann_file=lst)


@pytest.fixture
def imagenet_style(tmp_path):
    """train/<wnid>/<wnid>_<n>.JPEG of two classes, a file name only one class has
    (``extra.jpg``) and one both have (``dup.jpg``)."""
    import cv2
    img = np.zeros((8, 8, 3), np.uint8)
    for wnid in ('n01440764', 'n01443537'):
        (tmp_path / 'train' / wnid).mkdir(parents=True)
        for name in [f'{wnid}_{i}.JPEG' for i in range(3)] + ['dup.jpg']:
            cv2.imwrite(str(tmp_path / 'train' / wnid / name), img)
    cv2.imwrite(str(tmp_path / 'train' / 'n01443537' / 'extra.jpg'), img)
    return tmp_path


def test_dataset_and_hook_accept_the_same_forms(imagenet_style):
    root = imagenet_style
    lst = root / 'list.txt'
    lst.write_text('# SimCLR name, class/file, backslash, a bare name only one image has\n'
                   'n01443537_2.JPEG\nn01440764/n01440764_1.JPEG\n\n'
                   'n01440764\\n01440764_0.JPEG\nextra.jpg\n')
    subset = ImageFolder(data_root=str(root), data_prefix='train', ann_file=str(lst))
    full = ImageFolder(data_root=str(root), data_prefix='train')
    expect = ['n01443537/n01443537_2.JPEG', 'n01440764/n01440764_1.JPEG',
              'n01440764/n01440764_0.JPEG', 'n01443537/extra.jpg']
    got = [subset.get_data_info(i)['img_path'] for i in range(len(subset))]
    assert got == [str(root / 'train' / p) for p in expect]  # list order
    assert [subset.get_data_info(i)['gt_label'] for i in range(len(subset))] == [1, 0, 0, 1]
    idx = read_labelled_list(str(lst), full)
    assert [full.get_data_info(i)['img_path'] for i in idx] == sorted(got)  # dataset order
    assert [n for n, _, _ in resolve_subset_list(str(lst), str(root / 'train'))] == [2, 3, 5, 6]


@pytest.mark.parametrize('bad, why', [
    ('n01440764/n01440764_9.JPEG', 'matches no image of'),
    ('n01440764_9.JPEG', 'matches no image of'),
    ('dup.jpg', r'names 2 images \(n01440764/dup.jpg, n01443537/dup.jpg, ...\)')])
def test_dataset_and_hook_reject_the_same_bad_line(imagenet_style, bad, why):
    root = imagenet_style
    lst = root / 'bad.txt'
    lst.write_text(f'# header\nn01440764_0.JPEG\n{bad}\nn01440764_1.JPEG\n')
    full = ImageFolder(data_root=str(root), data_prefix='train')
    errors = []
    for read in (lambda: ImageFolder(data_root=str(root), data_prefix='train', ann_file=str(lst)),
                 lambda: read_labelled_list(str(lst), full)):
        with pytest.raises(SubsetListError) as e:
            read()
        errors.append(str(e.value))
    for msg in errors:  # which list, which line, which entry, why, the accepted forms
        assert msg.startswith(f'{lst}:3: listed image {bad!r} ')
        assert re.search(why, msg) and ACCEPTED_FORMS in msg
    # one error type, caught as a missing file (the dataset) or a bad value (the hook) alike
    assert issubclass(SubsetListError, FileNotFoundError) and issubclass(SubsetListError,
                                                                           ValueError)
