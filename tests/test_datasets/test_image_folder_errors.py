"""An ImageFolder with an empty class folder is an error naming it (it would shift the labels
of every later class)."""

import pytest

from mmmsf.datasets import ImageFolder


def test_empty_class_folder_is_named(image_folder):
    ds = ImageFolder(data_root=str(image_folder), data_prefix='train')
    assert len(ds) == 18 and ds.labels[-1] == 2
    empty = image_folder / 'train' / 'class1'
    for f in empty.iterdir():
        f.unlink()
    with pytest.raises(ValueError) as e:
        ImageFolder(data_root=str(image_folder), data_prefix='train')
    assert repr(str(empty)) in str(e.value) and 'holds no image' in str(e.value)
    (empty / 'notes.txt').write_text('not an image')
    with pytest.raises(ValueError, match='class1'):
        ImageFolder(data_root=str(image_folder), data_prefix='train')
