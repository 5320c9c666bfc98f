"""class_balanced_indices: the same number of images of every class, reproducible by seed."""
import numpy as np
import pytest

from mmmsf.datasets.label_subset import class_balanced_indices


def test_equal_count_per_class_capped_by_small_classes_and_seeded():
    labels = np.repeat([0, 1, 2], [50, 30, 4])  # 84 images, unbalanced
    idx = class_balanced_indices(labels, fraction=0.25, seed=3)  # round(0.25 * 84 / 3) = 7
    assert idx == sorted(set(idx))
    counts = np.bincount(labels[idx], minlength=3)
    assert counts.tolist() == [7, 7, 4]  # class 2 has only 4
    assert idx == class_balanced_indices(labels, fraction=0.25, seed=3)
    assert idx != class_balanced_indices(labels, fraction=0.25, seed=4)
    assert np.bincount(labels[class_balanced_indices(labels, per_class=2)]).tolist() == [2, 2, 2]


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match='exactly one of fraction / per_class'):
        class_balanced_indices([0, 1], fraction=0.5, per_class=1)
    with pytest.raises(ValueError, match=r'must be in \(0, 1\]'):
        class_balanced_indices([0, 1], fraction=1.5)
    with pytest.raises(ValueError, match='labelled dataset'):
        class_balanced_indices([0, -1], per_class=1)
