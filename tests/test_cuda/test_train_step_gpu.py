"""One MSF and one CMSF-KM training step on the GPU in float32 and with AMP (float16 and
bfloat16 autocast, mmengine's ``AmpOptimWrapper``): the losses are finite and equal within
the stated tolerance, and the step updated the weights and the bank.

Tolerance: the loss (a mean of squared distances between unit vectors, in [0, 4]) may differ
by ``ATOL + RTOL * |loss|`` -- float16: 0.01 + 1%, bfloat16: 0.02 + 3% (8 mantissa bits instead
of 11); both models start from the same weights, bank and data, and see the same random
ShuffleBN permutation. The CPU case runs the same harness twice in float32 and requires
identical losses, which is what makes the GPU comparison meaningful.
"""
import copy

import pytest
import torch
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.structures import BaseDataElement

from mmmsf.registry import MODELS
from tests.conftest import tiny_msf_cfg
from tests.test_cuda.compare import losses_close

TOLERANCE = {'float16': (0.01, 0.01), 'bfloat16': (0.02, 0.03)}  # (atol, rtol)
N_IMAGES = 96
# the CPU case only checks the harness: smaller, so that it takes seconds on 2 cores
SIZE = {'cpu': dict(batch=16, px=16, width=8, warm=2),
        'cuda': dict(batch=32, px=32, width=16, warm=4)}


def build(kind: str, device: str):
    cfg = tiny_msf_cfg(size=256, dim=32, topk=5, width=SIZE[device]['width'])
    if kind == 'cmsf_km':
        cfg.update(type='CMSF', constrained_selector=dict(type='KMeansSelector'),
                   embedding_cache=dict(type='EmbeddingCache'), rank_stats=False)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    model = model.to(device).train()
    if kind == 'cmsf_km':
        model.embedding_cache.allocate(N_IMAGES)
        model.constrained_selector.set_cluster_ids(torch.arange(N_IMAGES) % 4)
    return model


def batch(step: int, device: str):
    n, px = SIZE[device]['batch'], SIZE[device]['px']
    g = torch.Generator().manual_seed(step)
    views = [torch.randint(0, 256, (n, 3, px, px), generator=g, dtype=torch.uint8)
             for _ in range(2)]
    idx = torch.randperm(N_IMAGES, generator=g)[:n]
    samples = [BaseDataElement(metainfo=dict(sample_idx=int(i))) for i in idx]
    return dict(inputs=views, data_samples=samples)


def one_step(model, wrapper, data) -> dict:
    torch.manual_seed(1)  # the same ShuffleBN permutation in every run
    model.momentum_update(0.99)
    log = model.train_step(copy.deepcopy(data), wrapper)
    return {k: float(v.detach()) for k, v in log.items()}


def wrapper_for(model, precision: str):
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    if precision == 'float32':
        return OptimWrapper(optimizer=opt)
    # a static loss scale: a dynamic one may skip this single step on an overflow
    return AmpOptimWrapper(optimizer=opt, dtype=precision, loss_scale=512.0)


@pytest.mark.parametrize('kind', ['msf', 'cmsf_km'])
@pytest.mark.parametrize('device,precision', [
    ('cpu', 'float32'),
    pytest.param('cuda', 'float16', marks=pytest.mark.cuda),
    pytest.param('cuda', 'bfloat16', marks=pytest.mark.cuda)])
def test_train_step_float32_vs_amp(kind, device, precision, record_property):
    base = build(kind, device)
    # fill the bank with real targets of labelled images first, so that the constrained
    # search has members of the query's cluster to find
    with torch.no_grad():
        for s in range(SIZE[device]['warm']):
            d = base.data_preprocessor(batch(100 + s, device), True)
            base(d['inputs'], d['data_samples'], mode='loss')
    data = batch(0, device)
    ref_model, amp_model = copy.deepcopy(base), copy.deepcopy(base)
    ref = one_step(ref_model, wrapper_for(ref_model, 'float32'), data)
    other = one_step(amp_model, wrapper_for(amp_model, precision), data)
    record_property('loss_float32', ref['loss'])
    record_property(f'loss_{precision}', other['loss'])
    record_property('abs_diff', abs(ref['loss'] - other['loss']))
    if kind == 'cmsf_km':
        assert ref['constrained_frac'] == 1.0  # every query was constrained to its cluster
    if precision == 'float32':  # the harness itself is deterministic
        assert ref == other
    else:
        atol, rtol = TOLERANCE[precision]
        assert losses_close(ref['loss'], other['loss'], atol, rtol), (ref, other)
    for m in (ref_model, amp_model):
        params = torch.cat([p.detach().flatten().float() for p in m.parameters()])
        assert bool(torch.isfinite(params).all())
        assert not torch.equal(m.backbone.conv1.weight, base.backbone.conv1.weight)
        assert m.memory_bank.total_written == \
            base.memory_bank.total_written + SIZE[device]['batch']


@pytest.mark.cuda
def test_amp_step_runs_in_reduced_precision():
    """The AMP step really autocasts: the online backbone's convolutions run in float16."""
    model = build('msf', 'cuda')
    seen = []
    hook = model.backbone.conv1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    one_step(model, wrapper_for(model, 'float16'), batch(0, 'cuda'))
    hook.remove()
    assert seen and all(d == torch.float16 for d in seen)
