"""The resolved pre-training configs: the paper's hyper-parameters and the hooks the runner
registers, in registration order, are those the configs resolved to before the method hooks
became keyed ``default_hooks`` (the values below were read from the previous layout)."""
import glob
import os.path as osp

import pytest
from mmengine.runner import Runner

from mmmsf.apis import load_config
from mmmsf.registry import HOOKS
from tests.conftest import ROOT

MMENGINE_HOOKS = {'RuntimeInfoHook', 'IterTimerHook', 'DistSamplerSeedHook', 'LoggerHook',
                  'ParamSchedulerHook', 'CheckpointHook'}

# config: (model hyper-parameters, method hooks in the order the runner registers them)
EXPECTED = {
    'configs/byol/byol_asym_r50_200e.py': (
        {'type': 'MSF', 'topk': 1, 'bank': 1024, 'dim': 512},
        [('MomentumUpdateHook', dict(momentum=0.99)),
         ('NNMemoryBankHook', dict(interval=50)),
         ('RandomStateHook', {})]),
    'configs/cifar/byol-asym_r18_200e_cifar10.py': (
        {'type': 'MSF', 'topk': 1, 'bank': 16384, 'dim': 128},
        [('MomentumUpdateHook', dict(momentum=0.99, schedule='cosine', end_momentum=1.0)),
         ('NNMemoryBankHook', dict(interval=50)),
         ('RandomStateHook', {})]),
    'configs/cifar/byol-asym_r18w16_cpu1h_cifar10-20k.py': (
        {'type': 'MSF', 'topk': 1, 'bank': 8192, 'dim': 64},
        [('MomentumUpdateHook', dict(momentum=0.99, schedule='cosine', end_momentum=1.0)),
         ('NNMemoryBankHook', dict(interval=50)),
         ('RandomStateHook', {})]),
    'configs/cifar/msf_r18_200e_cifar10.py': (
        {'type': 'MSF', 'topk': 5, 'bank': 16384, 'dim': 128},
        [('MomentumUpdateHook', dict(momentum=0.99, schedule='cosine', end_momentum=1.0)),
         ('NNMemoryBankHook', dict(interval=50)),
         ('RandomStateHook', {})]),
    'configs/cifar/msf_r18w16_cpu1h_cifar10-20k.py': (
        {'type': 'MSF', 'topk': 5, 'bank': 8192, 'dim': 64},
        [('MomentumUpdateHook', dict(momentum=0.99, schedule='cosine', end_momentum=1.0)),
         ('NNMemoryBankHook', dict(interval=50)),
         ('RandomStateHook', {})]),
    'configs/cmsf/cmsf_2q_prev_r50_200e.py': (
        {'type': 'CMSF', 'topk': 5, 'bank': 128000, 'dim': 512, 'selector': 'TwoQueueSelector', 'weights': (0.5, 0.5)},
        [('MomentumUpdateHook', dict(momentum=0.99)),
         ('EmbeddingCacheHook', {}),
         ('NNMemoryBankHook', dict(interval=50)),
         ('ConstrainedRankHook', dict(interval=10)),
         ('RandomStateHook', {})]),
    'configs/cmsf/cmsf_2q_r50_200e.py': (
        {'type': 'CMSF', 'topk': 5, 'bank': 128000, 'dim': 512, 'selector': 'TwoQueueSelector', 'weights': (0.5, 0.5)},
        [('MomentumUpdateHook', dict(momentum=0.99)),
         ('NNMemoryBankHook', dict(interval=50)),
         ('ConstrainedRankHook', dict(interval=10)),
         ('RandomStateHook', {})]),
    'configs/cmsf/cmsf_km_r50_200e.py': (
        {'type': 'CMSF', 'topk': 5, 'bank': 128000, 'dim': 512, 'selector': 'KMeansSelector', 'weights': (0.5, 0.5)},
        [('MomentumUpdateHook', dict(momentum=0.99)),
         ('EmbeddingCacheHook', {}),
         ('NNMemoryBankHook', dict(interval=50)),
         ('KMeansClusterHook', dict(gpu='auto', max_points_per_centroid=10000000, niter=20, num_clusters=50000, seed=0)),
         ('ConstrainedRankHook', dict(interval=10)),
         ('RandomStateHook', {})]),
    'configs/cmsf/cmsf_semisup_10p_r50_200e.py': (
        {'type': 'CMSF', 'topk': 10, 'bank': 128000, 'dim': 512, 'selector': 'PseudoLabelSelector', 'weights': (1.0, 0.0)},
        [('MomentumUpdateHook', dict(momentum=0.99)),
         ('EmbeddingCacheHook', {}),
         ('NNMemoryBankHook', dict(interval=50)),
         ('PseudoLabelHook', dict(batch_size=256, epochs=10, labelled_list='data/imagenet/10percent.txt', lr=0.01, mid_epoch=True, momentum=0.9, weight_decay=0.0001)),
         ('ConstrainedRankHook', dict(interval=10)),
         ('RandomStateHook', {})]),
    'configs/cmsf/cmsf_sup_r50_200e.py': (
        {'type': 'CMSF', 'topk': 10, 'bank': 128000, 'dim': 512, 'selector': 'SupervisedSelector', 'weights': (1.0, 0.0)},
        [('MomentumUpdateHook', dict(momentum=0.99)),
         ('NNMemoryBankHook', dict(interval=50)),
         ('ConstrainedRankHook', dict(interval=10)),
         ('RandomStateHook', {})]),
    'configs/demo/cmsf_2q_prev_r18_cifar10mini.py': (
        {'type': 'CMSF', 'topk': 5, 'bank': 2048, 'dim': 64, 'selector': 'TwoQueueSelector', 'weights': (0.5, 0.5)},
        [('MomentumUpdateHook', dict(momentum=0.99)),
         ('EmbeddingCacheHook', {}),
         ('NNMemoryBankHook', dict(interval=5)),
         ('ConstrainedRankHook', dict(interval=5)),
         ('RandomStateHook', {})]),
    'configs/demo/cmsf_2q_r18_cifar10mini.py': (
        {'type': 'CMSF', 'topk': 5, 'bank': 2048, 'dim': 64, 'selector': 'TwoQueueSelector', 'weights': (0.5, 0.5)},
        [('MomentumUpdateHook', dict(momentum=0.99)),
         ('NNMemoryBankHook', dict(interval=5)),
         ('ConstrainedRankHook', dict(interval=5)),
         ('RandomStateHook', {})]),
    # the CMSF demos' base (not trained itself) now carries their common rank hook
    'configs/demo/cmsf_base_r18_cifar10mini.py': (
        {'type': 'MSF', 'topk': 5, 'bank': 2048, 'dim': 64},
        [('MomentumUpdateHook', dict(momentum=0.99)),
         ('NNMemoryBankHook', dict(interval=5)),
         ('ConstrainedRankHook', dict(interval=5)),
         ('RandomStateHook', {})]),
    'configs/demo/cmsf_km_r18_cifar10mini.py': (
        {'type': 'CMSF', 'topk': 5, 'bank': 2048, 'dim': 64, 'selector': 'KMeansSelector', 'weights': (0.5, 0.5)},
        [('MomentumUpdateHook', dict(momentum=0.99)),
         ('EmbeddingCacheHook', {}),
         ('NNMemoryBankHook', dict(interval=5)),
         ('KMeansClusterHook', dict(niter=20, num_clusters=100, seed=0)),
         ('ConstrainedRankHook', dict(interval=5)),
         ('RandomStateHook', {})]),
    'configs/demo/cmsf_semisup_10p_r18_cifar10mini.py': (
        {'type': 'CMSF', 'topk': 10, 'bank': 2048, 'dim': 64, 'selector': 'PseudoLabelSelector', 'weights': (1.0, 0.0)},
        [('MomentumUpdateHook', dict(momentum=0.99)),
         ('EmbeddingCacheHook', {}),
         ('NNMemoryBankHook', dict(interval=5)),
         ('PseudoLabelHook', dict(batch_size=256, epochs=10, labelled_list='data/cifar10_mini/labelled_10percent.txt', lr=0.01, mid_epoch=True, momentum=0.9, weight_decay=0.0001)),
         ('ConstrainedRankHook', dict(interval=5)),
         ('RandomStateHook', {})]),
    'configs/demo/cmsf_sup_r18_cifar10mini.py': (
        {'type': 'CMSF', 'topk': 10, 'bank': 2048, 'dim': 64, 'selector': 'SupervisedSelector', 'weights': (1.0, 0.0)},
        [('MomentumUpdateHook', dict(momentum=0.99)),
         ('NNMemoryBankHook', dict(interval=5)),
         ('ConstrainedRankHook', dict(interval=5)),
         ('RandomStateHook', {})]),
    'configs/demo/msf_r18_cifar10mini_ws.py': (
        {'type': 'MSF', 'topk': 5, 'bank': 2048, 'dim': 64},
        [('MomentumUpdateHook', dict(momentum=0.99)),
         ('NNMemoryBankHook', dict(interval=5)),
         ('RandomStateHook', {})]),
    'configs/demo/msf_r18_cifar10mini_ws_figures.py': (
        {'type': 'MSF', 'topk': 5, 'bank': 2048, 'dim': 64},
        [('MomentumUpdateHook', dict(momentum=0.99)),
         ('NNMemoryBankHook', dict(interval=5)),
         ('NeighbourSnapshotHook', dict(interval=5, k=8, num_queries=8, pool_size=2000)),
         ('RandomStateHook', {})]),
    'configs/msf/msf_r50_128k_200e.py': (
        {'type': 'MSF', 'topk': 5, 'bank': 128000, 'dim': 512},
        [('MomentumUpdateHook', dict(momentum=0.99)),
         ('NNMemoryBankHook', dict(interval=50)),
         ('RandomStateHook', {})]),
    'configs/msf/msf_r50_200e.py': (
        {'type': 'MSF', 'topk': 5, 'bank': 1024000, 'dim': 512},
        [('MomentumUpdateHook', dict(momentum=0.99)),
         ('NNMemoryBankHook', dict(interval=50)),
         ('RandomStateHook', {})]),
    'configs/msf/msf_ss_r50_200e.py': (
        {'type': 'MSF', 'topk': 5, 'bank': 1024000, 'dim': 512},
        [('MomentumUpdateHook', dict(momentum=0.99)),
         ('NNMemoryBankHook', dict(interval=50)),
         ('RandomStateHook', {})]),
    'configs/msf/msf_ww_r50_200e.py': (
        {'type': 'MSF', 'topk': 5, 'bank': 1024000, 'dim': 512},
        [('MomentumUpdateHook', dict(momentum=0.99)),
         ('NNMemoryBankHook', dict(interval=50)),
         ('RandomStateHook', {})]),

}


class _HookList:
    """Just enough of a Runner for mmengine's own hook registration code."""

    def __init__(self):
        self._hooks = []

    def register_hook(self, hook, priority=None):
        Runner.register_hook(self, hook, priority)


def registered_hooks(cfg):
    """(type, config) of every hook, in mmengine's registration (and calling) order."""
    def build(h):
        obj = HOOKS.build(dict(h))
        obj._mmmsf_cfg = dict(h)
        return obj
    hooks = _HookList()
    Runner.register_default_hooks(hooks, {k: None if v is None else build(v)
                                          for k, v in cfg.get('default_hooks', {}).items()})
    Runner.register_custom_hooks(hooks, [build(h) for h in cfg.get('custom_hooks', [])])
    out = []
    for h in hooks._hooks:
        c = dict(getattr(h, '_mmmsf_cfg', dict(type=type(h).__name__)))
        out.append((c.pop('type'), c))
    return out


@pytest.mark.parametrize('rel', sorted(EXPECTED))
def test_resolved_config_is_unchanged(rel):
    cfg = load_config(osp.join(ROOT, rel))
    model, hooks = EXPECTED[rel]
    m = cfg.model
    got = dict(type=m.type, topk=m.topk, bank=m.memory_bank.size, dim=m.memory_bank.dim)
    if 'selector' in model:
        got['selector'] = m.constrained_selector.type
        got['weights'] = (m.loss_weights.constrained, m.loss_weights.unconstrained)
    assert got == model
    assert m.get('target_view', 0) == 0 and m.get('online_view', 1) == 1
    method = [(t, c) for t, c in registered_hooks(cfg) if t not in MMENGINE_HOOKS]
    assert method == [(t, dict(c)) for t, c in hooks]


def test_every_pretraining_config_is_listed():
    found = set()
    for path in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True):
        rel = osp.relpath(path, ROOT)
        if '/_base_/' in rel or rel.startswith('configs/benchmarks'):
            continue
        found.add(rel)
    assert found == set(EXPECTED)


def test_ema_momentum_is_written_once():
    files = [p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
             if 'MomentumUpdateHook' in open(p).read()]
    assert [osp.relpath(p, ROOT) for p in files] == ['configs/_base_/default_runtime.py']
