"""LARS: each weight moves by lr * eta of its norm per step; 1-D parameters take plain SGD."""
import pytest
import torch
import torch.nn as nn
from mmengine.optim import build_optim_wrapper

from mmmsf.engine.optimizers import LARS


def test_trust_ratio_sets_the_relative_step():
    torch.manual_seed(0)
    lin = nn.Linear(8, 4)
    w0, b0 = lin.weight.detach().clone(), lin.bias.detach().clone()
    opt = LARS(lin.parameters(), lr=0.5, momentum=0.9, weight_decay=0.0, eta=0.02)
    for scale in (1.0, 1000.0):  # the gradient's size does not matter for the weight
        with torch.no_grad():
            lin.weight.copy_(w0)
            lin.bias.copy_(b0)
        opt.state.clear()
        lin.zero_grad()
        (scale * lin(torch.randn(16, 8)).pow(2).sum()).backward()
        g_bias = lin.bias.grad.clone()
        opt.step()
        step = (lin.weight - w0).norm() / w0.norm()
        assert step.item() == pytest.approx(0.5 * 0.02, rel=1e-5)
        torch.testing.assert_close(lin.bias.detach(), b0 - 0.5 * g_bias)  # plain SGD


def test_weight_decay_and_errors():
    w = nn.Parameter(torch.ones(3, 3))
    w.grad = torch.zeros(3, 3)  # only the decay: the step is along -w, of size lr * eta * |w|
    LARS([w], lr=1.0, weight_decay=0.1, eta=0.5).step()
    torch.testing.assert_close(w.detach(), torch.full((3, 3), 0.5))
    with pytest.raises(ValueError, match='momentum'):
        LARS([w], lr=0.1, momentum=1.5)


def test_builds_from_an_mmengine_config():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    wrapper = build_optim_wrapper(model, dict(
        type='OptimWrapper', optimizer=dict(type='LARS', lr=0.3, weight_decay=1e-5, eta=0.02),
        paramwise_cfg=dict(custom_keys={'1': dict(lr_mult=10.0)})))
    assert isinstance(wrapper.optimizer, LARS)
    assert sorted(g['lr'] for g in wrapper.optimizer.param_groups) == pytest.approx(
        [0.3, 0.3, 3.0, 3.0])
