"""One subset-list reader for the dataset, the pseudo-label hook and the study."""
import pytest

from mmmsf.datasets import ImageFolder
from mmmsf.datasets.label_subset import read_subset_list, write_subset_list
from mmmsf.engine.hooks.pseudo_label_hook import read_labelled_list


def test_entries_skip_blank_and_comment_lines(tmp_path):
    p = tmp_path / 'l.txt'
    p.write_text('# header\nclass0/000.jpg\n\n  class1/001.jpg 1\nclass2/002.jpg\n')
    assert read_subset_list(str(p)) == [(1, 'class0/000.jpg', None), (2, 'class1/001.jpg', '1'),
                                        (3, 'class2/002.jpg', None)]


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
