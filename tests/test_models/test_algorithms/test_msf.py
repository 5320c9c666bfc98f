import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import BaseDataElement

from mmmsf.models.losses import MeanShiftLoss
from mmmsf.models.selectors import SelectorOutput
from mmmsf.registry import MODELS
from tests.conftest import tiny_msf_cfg


def build(**kw):
    torch.manual_seed(0)
    m = MODELS.build(tiny_msf_cfg(**kw))
    m.init_weights()
    return m


def samples(n, labels=None):
    return [BaseDataElement(metainfo=dict(sample_idx=i),
                            **({} if labels is None else dict(gt_label=int(labels[i]))))
            for i in range(n)]


def views(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, 3, 16, 16, generator=g), torch.randn(n, 3, 16, 16, generator=g)]


def test_target_is_copy_and_ema_formula():
    m = build()
    for po, pt in zip(m.online_parameters(), m.target_parameters()):
        assert torch.equal(po, pt) and not pt.requires_grad
    old_t = [p.clone() for p in m.target_parameters()]
    with torch.no_grad():
        for p in m.online_parameters():
            p.add_(1.0)
    m.momentum_update(0.99)
    for po, pt, t0 in zip(m.online_parameters(), m.target_parameters(), old_t):
        assert torch.allclose(pt, 0.99 * t0 + 0.01 * po, atol=1e-6)


def test_k1_equals_byol_asym_loss_and_gradients():
    m = build(topk=1, target_bn='none')
    ref = copy.deepcopy(m)
    x = views()
    loss = m(x, samples(8), mode='loss')['loss']
    loss.backward()
    # BYOL with the asymmetric loss: 2 - 2 cos(v, u) for the image's own target u
    with torch.no_grad():
        u = F.normalize(ref.target_neck(ref.target_backbone(x[0])), dim=1)
    v = F.normalize(ref.predictor(ref.neck(ref.backbone(x[1]))), dim=1)
    byol = (2 - 2 * (v * u).sum(1)).mean()
    byol.backward()
    assert torch.allclose(loss, byol, atol=1e-6)
    for (n, p1), p2 in zip(m.named_parameters(), ref.parameters()):
        if p1.requires_grad:
            assert torch.allclose(p1.grad, p2.grad, atol=1e-6), n


def test_loss_is_mean_of_squared_distances_to_topk():
    m = build(topk=4, target_bn='none', size=64)
    x = views(16, 3)
    m.memory_bank.enqueue(F.normalize(torch.randn(32, 16), dim=1))  # fill with other entries
    out = m(x, samples(16), mode='loss')
    with torch.no_grad():
        u = F.normalize(m.target_neck(m.target_backbone(x[0])), dim=1)
        v = F.normalize(m.predictor(m.neck(m.backbone(x[1]))), dim=1)
        d_t = ((u[:, None] - m.memory_bank.bank[None]) ** 2).sum(-1)  # brute force
        idx = torch.argsort(d_t, dim=1, stable=True)[:, :4]
        z = m.memory_bank.bank[idx]
        expected = ((v[:, None] - z) ** 2).sum(-1).mean(1).mean()
    assert torch.allclose(out['loss'], expected, atol=1e-5)


def test_sum_of_distances_and_distance_to_mean_give_same_gradient():
    """Paper §2: for unit vectors, (1/k) sum_j ||v - z_j||^2 and ||v - mean_j z_j||^2 differ by a
    constant, so the gradient reaching the (pre-normalisation) prediction is identical."""
    p0 = torch.randn(6, 8)
    z = F.normalize(torch.randn(6, 5, 8), dim=-1)
    grads, values = [], []
    for mode in ('sum', 'mean'):
        p = p0.clone().requires_grad_(True)
        loss = MeanShiftLoss(mode=mode)(F.normalize(p, dim=1), z)
        loss.backward()
        grads.append(p.grad)
        values.append(float(loss))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
    assert grads[0].abs().sum() > 0 and abs(values[0] - values[1]) > 1e-3


def test_purity_excludes_self():
    m = build(topk=3, target_bn='none', size=32)
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    # the bank holds only this batch's embeddings (after enqueue) + random entries labelled -1
    out = m(views(8), samples(8, labels), mode='loss')
    sel = m.selector(F.normalize(m.target_neck(m.target_backbone(views(8)[0])), dim=1),
                     m.memory_bank, 3)
    assert 'purity' in out and 0.0 <= float(out['purity']) <= 1.0
    assert sel.indices.shape == (8, 3)
    # known labels: each query's neighbour #1 is its own slot (same label), #2 and #3 are one
    # entry of its class and one of the other: 1/2 without self, 2/3 if self were counted
    m.memory_bank.labels[:4] = torch.tensor([0, 0, 1, 1])
    q_labels = torch.tensor([0, 1])
    idx = torch.tensor([[0, 1, 2], [2, 3, 0]])  # query 0 sits in slot 0, query 1 in slot 2
    nb = SelectorOutput(idx, torch.zeros(2, dtype=torch.bool))
    with_self = (m.memory_bank.labels[idx] == q_labels[:, None]).float().mean()
    assert float(with_self) == pytest.approx(2 / 3)
    assert float(m.neighbour_stats(nb, q_labels)['purity']) == 0.5


def test_build_errors_are_clear():
    with pytest.raises(ValueError, match='topk=100'):
        build(topk=100, size=64)
    with pytest.raises(ValueError, match='differs from the projection output'):
        MODELS.build(dict(tiny_msf_cfg(), memory_bank=dict(type='NNMemoryBank', size=64, dim=7)))
    with pytest.raises(KeyError, match='target_bn'):
        build(target_bn='sometimes')


def test_backbone_matches_torchvision():
    import torchvision
    tv = torchvision.models.resnet18()
    tv.fc = torch.nn.Identity()
    ours = MODELS.build(dict(type='ResNet', depth=18))
    ours.load_state_dict({k: v for k, v in tv.state_dict().items()}, strict=True)
    tv.eval(), ours.eval()
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(ours(x), tv(x), atol=1e-5)
    r50 = MODELS.build(dict(type='ResNet', depth=50))
    tv50 = torchvision.models.resnet50()
    assert set(tv50.state_dict()) - set(r50.state_dict()) == {'fc.weight', 'fc.bias'}
    assert r50.feat_dim == 2048


def test_small_stem_keeps_resolution():
    net = MODELS.build(dict(type='ResNet', depth=18, stem='small', base_channels=8, pool=False,
                            out_indices=(0, 3)))
    c1, c4 = net(torch.randn(2, 3, 32, 32))
    assert c1.shape[-1] == 32 and c4.shape[-1] == 4
