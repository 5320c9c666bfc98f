"""MomentumUpdateHook's schedules: constant (the paper) and BYOL's half cosine."""
import math

import pytest

from mmmsf.engine.hooks import MomentumUpdateHook


def test_constant_momentum():
    hook = MomentumUpdateHook(0.99)
    assert [hook.momentum_at(t, 100) for t in (0, 50, 100)] == [0.99] * 3


def test_cosine_momentum_rises_from_the_base_to_the_end():
    hook = MomentumUpdateHook(0.99, schedule='cosine', end_momentum=1.0)
    assert hook.momentum_at(0, 100) == pytest.approx(0.99)
    assert hook.momentum_at(50, 100) == pytest.approx(0.995)
    assert hook.momentum_at(100, 100) == pytest.approx(1.0)
    m = [hook.momentum_at(t, 100) for t in range(101)]
    assert all(a <= b for a, b in zip(m, m[1:]))
    assert hook.momentum_at(25, 100) == pytest.approx(1 - 0.01 * (math.cos(math.pi / 4) + 1) / 2)


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match=r'in \[0, 1\]'):
        MomentumUpdateHook(1.5)
    with pytest.raises(KeyError, match="'constant' or 'cosine'"):
        MomentumUpdateHook(schedule='linear')
