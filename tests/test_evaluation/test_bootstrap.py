"""Paired bootstrap of an accuracy gain: cases whose interval is known."""
import math

import numpy as np
import pytest

from mmmsf.evaluation import paired_bootstrap


def test_identical_and_opposite_classifiers_have_degenerate_intervals():
    a = np.array([1, 0, 1, 1, 0, 0, 1, 0], dtype=bool)
    same = paired_bootstrap(a, a, num_samples=500)
    assert (same['gain'], same['low'], same['high']) == (0.0, 0.0, 0.0)
    allright = paired_bootstrap(np.ones(50), np.zeros(50), num_samples=500)
    assert (allright['gain'], allright['low'], allright['high']) == (100.0, 100.0, 100.0)


def test_interval_matches_the_normal_theory_interval_of_a_known_difference():
    # 2,000 test images: a right / b wrong on 30 %, the reverse on 10 %, the same on 60 %.
    # Gain 20 points; per-image difference d in {-1, 0, 1} with var 0.4 - 0.2^2 = 0.36, so the
    # 95 % interval is 20 +- 1.96 * 100 * sqrt(0.36 / 2000) = 20 +- 2.63 points.
    n = 2000
    a = np.zeros(n, dtype=bool)
    b = np.zeros(n, dtype=bool)
    a[:600] = True                      # a right, b wrong
    b[600:800] = True                   # b right, a wrong
    a[800:1400] = b[800:1400] = True    # both right; the rest both wrong
    perm = np.random.default_rng(1).permutation(n)
    res = paired_bootstrap(a[perm], b[perm], num_samples=20000, seed=0)
    half = 1.96 * 100 * math.sqrt(0.36 / n)
    assert res['gain'] == pytest.approx(20.0)
    assert res['low'] == pytest.approx(20.0 - half, abs=0.25)
    assert res['high'] == pytest.approx(20.0 + half, abs=0.25)
    # pairing matters: two independent intervals would be wider (var 0.24 + 0.16 - 2 cov)
    assert res['high'] - res['low'] < 2 * 1.96 * 100 * math.sqrt((0.42 * 0.58 + 0.22 * 0.78) / n)
    # deterministic for a seed, different for another
    assert paired_bootstrap(a[perm], b[perm], num_samples=20000, seed=0) == res
    assert paired_bootstrap(a[perm], b[perm], num_samples=20000, seed=1)['low'] != res['low']


def test_bad_input_is_one_clear_error():
    with pytest.raises(ValueError, match='same test images'):
        paired_bootstrap(np.ones(5), np.ones(6))
    with pytest.raises(ValueError, match='1-D'):
        paired_bootstrap(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match='confidence'):
        paired_bootstrap(np.ones(5), np.ones(5), confidence=95)
