"""LARS: SGD with a layer-wise trust ratio (You et al., 2017), BYOL's optimiser.

For every weight tensor ``w`` with gradient ``g`` (weight decay ``wd`` added first)::

    g <- g + wd * w
    g <- g * eta * ||w|| / ||g||          (the trust ratio; 1 where either norm is 0)
    v <- momentum * v + g;   w <- w - lr * v

so each layer moves by about ``lr * eta`` of its own norm per step, whatever the size of its
gradient. Parameter groups with ``lars_exclude=True`` (biases and normalisation weights, as in
BYOL: ``paramwise_cfg=dict(bias_decay_mult=0, norm_decay_mult=0)`` plus 1-D parameters) use
plain SGD with momentum and no weight decay.

Why mmmsf ships it: with SGD the mean-shift loss's gradients shrink as the online prediction
matches its neighbours, and a small network then barely moves (configs/cifar/README.md); the
trust ratio keeps the relative step size.
"""
from typing import Iterable

import torch
from torch.optim.optimizer import Optimizer

from mmmsf.registry import OPTIMIZERS


@OPTIMIZERS.register_module()
class LARS(Optimizer):
    """LARS with momentum; 1-D parameters (biases, BN) are not adapted and not decayed.

    Args:
        params: parameters or parameter groups.
        lr: learning rate.
        momentum: SGD momentum.
        weight_decay: L2 weight decay of the adapted (>= 2-D) parameters.
        eta: trust coefficient (BYOL: 1e-3; solo-learn's CIFAR configs: 0.02).
        exclude_1d: use plain SGD (no trust ratio, no decay) for 1-D parameters.
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9,
                 weight_decay: float = 0.0, eta: float = 0.02, exclude_1d: bool = True):
        if lr <= 0 or eta <= 0 or not 0 <= momentum < 1 or weight_decay < 0:
            raise ValueError(f'LARS: lr={lr} and eta={eta} must be > 0, momentum={momentum} in '
                             f'[0, 1), weight_decay={weight_decay} >= 0.')
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      eta=eta, exclude_1d=exclude_1d))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group['params']:
                if p.grad is None:
                    continue
                g = p.grad
                if not (group['exclude_1d'] and p.ndim <= 1):
                    if group['weight_decay']:
                        g = g.add(p, alpha=group['weight_decay'])
                    w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
                    trust = torch.where((w_norm > 0) & (g_norm > 0),
                                        group['eta'] * w_norm / g_norm, torch.ones_like(w_norm))
                    g = g * trust
                state = self.state[p]
                buf = state.get('momentum_buffer')
                if buf is None:
                    buf = state['momentum_buffer'] = torch.clone(g).detach()
                else:
                    buf.mul_(group['momentum']).add_(g)
                p.add_(buf, alpha=-group['lr'])
        return loss
