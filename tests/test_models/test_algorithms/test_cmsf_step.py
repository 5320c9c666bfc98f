"""One CMSF step: the slots enqueue returns reach after_enqueue, the pseudo-label constraint is
computed once, and mean_shift_losses changes no state."""
import torch
from mmengine.structures import BaseDataElement

from mmmsf.registry import MODELS
from tests.conftest import tiny_msf_cfg


def _batch(n=8, step=0, views=2):
    g = torch.Generator().manual_seed(step)
    inputs = [torch.randn(n, 3, 16, 16, generator=g) for _ in range(views)]
    samples = []
    for i in range(n):
        d = BaseDataElement(metainfo=dict(sample_idx=step * n + i))
        d.gt_label = torch.tensor(i % 3)
        samples.append(d)
    return inputs, samples


def _semisup():
    m = MODELS.build(tiny_msf_cfg(
        type='CMSF', embedding_cache=dict(type='EmbeddingCache'),
        constrained_selector=dict(type='PseudoLabelSelector', num_classes=3, threshold=0.0)))
    m.embedding_cache.allocate(64)
    sel = m.constrained_selector
    sel.set_labelled(torch.arange(64) % 4 == 0)
    sel.load_classifier(sel.classifier.state_dict())  # trained: every query gets a label
    return m


def test_pseudo_label_classifier_runs_once_per_step():
    m = _semisup()
    calls = []
    m.constrained_selector.classifier.register_forward_hook(lambda *a: calls.append(1))
    for step in range(3):
        calls.clear()
        m.loss(*_batch(step=step))
        assert len(calls) == 1, step
    # the slots written this step carry the labels the constraint used
    sel, bank = m.constrained_selector, m.memory_bank
    written = torch.arange(bank.write_pointer - 8, bank.write_pointer)
    u = bank.bank[written]
    info = sel.constraint_labels(u, bank.sample_idx[written], bank.labels[written])
    assert torch.equal(sel.slot_labels[written], info['labels'])


def test_after_enqueue_gets_the_slots_enqueue_wrote(monkeypatch):
    m = MODELS.build(tiny_msf_cfg(type='CMSF', embedding_cache=dict(type='EmbeddingCache'),
                                  constrained_selector=dict(type='KMeansSelector')))
    m.embedding_cache.allocate(64)
    seen = []
    enqueue = m.memory_bank.enqueue
    monkeypatch.setattr(m.memory_bank, 'enqueue',
                        lambda *a, **kw: seen.append(enqueue(*a, **kw)) or seen[-1])
    after = m.after_enqueue
    got = []
    monkeypatch.setattr(m, 'after_enqueue', lambda slots, u, side: (got.append(slots),
                                                                      after(slots, u, side)))
    for step in range(3):
        inputs, samples = _batch(step=step)
        m.loss(inputs, samples)
        assert got[-1] is seen[-1]
        # the cache holds the targets just written, under their images' indices
        idx = torch.tensor([s.metainfo['sample_idx'] for s in samples])
        emb, valid = m.embedding_cache.get(idx)
        assert valid.all() and torch.equal(emb, m.memory_bank.bank[seen[-1]])


def test_mean_shift_losses_change_no_state():
    m = _semisup()
    m.loss(*_batch(step=0))
    inputs, samples = _batch(step=1)
    u = m.target_embed(inputs[0])
    v = m.online_embed(inputs[1])
    side = m.side_info(samples, u.shape[0], u.device)
    side.update(m.extra_side_info(inputs, u, side))
    neighbours = m.select_neighbours(u, side)
    before = {k: t.clone() for k, t in m.state_dict().items()}
    first = m.mean_shift_losses(v, neighbours)
    again = m.mean_shift_losses(v, neighbours)
    assert set(first) == {'loss_constrained', 'loss_unconstrained'}
    for k in first:
        assert torch.equal(first[k], again[k])
    for k, t in m.state_dict().items():
        assert torch.equal(t, before[k]), k
