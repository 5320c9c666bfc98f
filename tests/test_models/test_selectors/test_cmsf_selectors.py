"""CMSF's constrained selectors on hand-made banks, against brute-force references."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import BaseDataElement

from mmmsf.models.memories import NNMemoryBank
from mmmsf.models.selectors import (ConstrainedSelector, KMeansSelector, PseudoLabelSelector,
                                    SupervisedSelector, TopKSelector, TwoQueueSelector)
from mmmsf.registry import MODELS
from mmmsf.utils.knn_search import unconstrained_ranks
from tests.conftest import tiny_msf_cfg

K, D = 48, 8


def unit(n, d=D, seed=0):
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=1)


def make_bank(seed=0, labels=None, sample_idx=None):
    bank = NNMemoryBank(K, D)
    bank.bank.copy_(unit(K, seed=seed))
    bank.labels.copy_(torch.as_tensor(labels) if labels is not None else torch.full((K, ), -1))
    bank.sample_idx.copy_(torch.as_tensor(sample_idx) if sample_idx is not None
                          else torch.arange(K))
    return bank


def brute_force(query, keys, k, mask, constrained):
    """Members of C by (similarity desc, index asc), then non-members likewise; first k."""
    out = []
    for b in range(query.shape[0]):
        sims = (query[b] @ keys.T).tolist()
        order = sorted(range(len(sims)), key=lambda j: (-sims[j], j))
        if bool(constrained[b]):
            members = [j for j in order if mask[b, j]]
            order = members + [j for j in order if not mask[b, j]]
        out.append(order[:k])
    return torch.tensor(out)


def queries_from_bank(bank, rows, noise=0.05, seed=1):
    """Queries near some bank entries (the query is in the bank, as after MSF's enqueue)."""
    q = bank.bank[rows].clone()
    q += noise * unit(len(rows), seed=seed)
    return F.normalize(q, dim=1)


# ---------------------------------------------------------------------------- supervised
def test_supervised_is_topk_of_same_label_entries():
    labels = torch.arange(K) % 4
    labels[40:] = -1  # unlabelled entries (e.g. the random initial ones)
    labels[3] = 5  # class 5 has a single entry: k > |C|
    bank = make_bank(labels=labels)
    rows = [0, 1, 2, 3, 41]
    q = queries_from_bank(bank, rows)
    q_labels = torch.tensor([0, 1, 2, 5, -1])
    out = SupervisedSelector()(q, bank, 6, labels=q_labels)
    mask = (labels[None] == q_labels[:, None]) & (labels >= 0)[None]
    constrained = q_labels >= 0
    assert out.constrained.tolist() == [True, True, True, True, False]
    assert torch.equal(out.indices, brute_force(q, bank.bank, 6, mask, constrained))
    # C is exactly "same label, labelled": the first |C| picks of every constrained query
    for b in range(4):
        n_c = int(mask[b].sum())
        assert out.extras['c_size'][b] == n_c
        assert all(labels[j] == q_labels[b] for j in out.indices[b, :min(n_c, 6)])
    # k > |C| (class 5 has one entry): the member first, then the nearest non-members
    assert out.indices[3, 0] == 3 and set(out.indices[3, 1:].tolist()).isdisjoint({3})
    # the unlabelled query falls back to MSF's plain top-k
    plain = TopKSelector()(q, bank, 6)
    assert torch.equal(out.indices[4], plain.indices[4])


def test_selector_reports_missing_side_information():
    with pytest.raises(ValueError, match="needs \\['labels'\\]"):
        SupervisedSelector()(unit(2), make_bank(), 3)


# ---------------------------------------------------------------------------- k-means
def test_kmeans_constrains_to_the_query_cluster():
    sample_idx = torch.arange(100, 100 + K)
    sample_idx[:4] = -1  # random initial entries: no image
    bank = make_bank(sample_idx=sample_idx)
    sel = KMeansSelector()
    q_idx = torch.tensor([110, 120, 130, 7])  # 7: an image never clustered
    q = queries_from_bank(bank, [10, 20, 30, 5])
    # before the first clustering (epoch 1): every query is unconstrained = MSF
    out = sel(q, bank, 5, sample_idx=q_idx)
    assert not out.constrained.any()
    assert torch.equal(out.indices, TopKSelector()(q, bank, 5).indices)
    ids = torch.full((200, ), -1, dtype=torch.long)
    ids[100:100 + K] = torch.arange(K) % 5
    ids[130] = 4  # query 2's cluster
    ids[7] = -1
    sel.set_cluster_ids(ids)
    out = sel(q, bank, 5, sample_idx=q_idx)
    slot_ids = torch.where(sample_idx >= 0, ids[sample_idx.clamp(min=0)], torch.tensor(-1))
    q_ids = ids[q_idx]
    mask = (slot_ids[None] == q_ids[:, None]) & (slot_ids >= 0)[None]
    assert out.constrained.tolist() == [True, True, True, False]
    assert torch.equal(out.indices, brute_force(q, bank.bank, 5, mask, q_ids >= 0))
    for b in range(3):  # every neighbour in the query's cluster (|C| >= 5 here)
        assert int(mask[b].sum()) >= 5
        assert (slot_ids[out.indices[b]] == q_ids[b]).all()
    assert (sample_idx[out.indices[:3]] >= 0).all()  # random initial entries are never in C


# ---------------------------------------------------------------------------- 2Q
@pytest.mark.parametrize('reading', ['third_view', 'previous_visit'])
def test_two_queue_constrains_to_second_bank_neighbours(reading):
    bank = make_bank()
    sel = TwoQueueSelector(topk_prime=4, second_query=reading)
    sel.bind(bank)
    key = sel.requires[0]
    # write M' for slots 8..47 (slots 0..7 keep their random initial, invalid entries)
    second = unit(K, seed=7)
    slots = torch.arange(8, K)
    side = {key: second[8:]}
    if reading == 'previous_visit':
        valid = torch.ones(K - 8, dtype=torch.bool)
        valid[:4] = False  # first visits of slots 8..11: no previous embedding
        side['previous_valid'] = valid
    sel.after_enqueue(bank, slots, bank.bank[8:], **side)
    rows = [20, 30, 9]
    q = queries_from_bank(bank, rows)
    u2 = second[rows]
    side = {key: u2}
    if reading == 'previous_visit':
        side['previous_valid'] = torch.tensor([True, True, False])
    out = sel(q, bank, 5, **side)
    # brute force: C = top-k' of u' among the valid M' slots
    valid_slots = torch.zeros(K, dtype=torch.bool)
    valid_slots[8:] = True
    if reading == 'previous_visit':
        valid_slots[8:12] = False
    mask = torch.zeros(len(rows), K, dtype=torch.bool)
    for b in range(len(rows)):
        s = (u2[b] @ second.T).masked_fill(~valid_slots, -9)
        mask[b, sorted(range(K), key=lambda j: (-s[j], j))[:4]] = True
    constrained = torch.tensor([True, True, reading == 'third_view'])
    assert out.constrained.tolist() == constrained.tolist()
    assert torch.equal(out.indices, brute_force(q, bank.bank, 5, mask, constrained))
    for b in range(2):
        assert mask[b, rows[b]]  # its own slot is its nearest M' neighbour, so it is in C
        assert out.indices[b, 0] == rows[b]
        assert int(out.extras['c_size'][b]) == 4  # k = 5 > k' = 4: one pick from outside C
        assert set(out.indices[b, :4].tolist()) == set(torch.nonzero(mask[b]).flatten().tolist())
        assert not mask[b, out.indices[b, 4]]


def test_two_queue_needs_binding_and_a_known_reading():
    with pytest.raises(KeyError, match='second_query'):
        TwoQueueSelector(second_query='fourth_view')
    with pytest.raises(RuntimeError, match='bind'):
        TwoQueueSelector()(unit(2), make_bank(), 3, extra_view_target=unit(2))


# ---------------------------------------------------------------------------- pseudo-labels
def axis_classifier(sel: PseudoLabelSelector, scale: float) -> None:
    """Hand-made classifier whose logits are ``scale * x`` (so class c = axis c)."""
    eye = torch.eye(D)
    sel.classifier[0].weight.copy_(torch.cat([eye, -eye]))
    sel.classifier[0].bias.zero_()
    sel.classifier[3].weight.copy_(scale * torch.cat([eye, -eye], dim=1))
    sel.classifier[3].bias.zero_()
    sel.trained.fill_(True)


@torch.no_grad()
def test_pseudo_label_constraint_and_threshold():
    bank = make_bank()
    sel = PseudoLabelSelector(num_classes=D, threshold=0.85, hid_channels=2 * D)
    sel.bind(bank)
    axis_classifier(sel, scale=30.0)
    is_labelled = torch.zeros(K, dtype=torch.bool)
    is_labelled[:K // 2] = True
    sel.set_labelled(is_labelled)
    # this step's entries: slots 0..47 = images 0..47, gt label = argmax axis
    gt = bank.bank.argmax(dim=1)
    sel.after_enqueue(bank, torch.arange(K), bank.bank, sample_idx=torch.arange(K), labels=gt)
    info = sel.constraint_labels(bank.bank, torch.arange(K), gt)
    slot_labels = info['labels']
    assert torch.equal(sel.slot_labels, slot_labels)
    assert torch.equal(slot_labels[:K // 2], gt[:K // 2])  # labelled: ground truth
    conf = (bank.bank * 30 / (1 + 1e-5) ** 0.5).softmax(1).max(1).values  # BN (eval) scale
    unl = torch.arange(K) >= K // 2
    assert torch.equal(slot_labels[unl] >= 0, conf[unl] >= 0.85)  # unlabelled: confident only
    rows = torch.tensor([1, 30, 31, 40])
    q, q_idx, q_gt = bank.bank[rows], rows, gt[rows]
    out = sel(q, bank, 5, sample_idx=q_idx, labels=q_gt)
    q_lab = slot_labels[rows]
    mask = (slot_labels[None] == q_lab[:, None]) & (slot_labels >= 0)[None]
    assert torch.equal(out.constrained, q_lab >= 0)
    assert torch.equal(out.indices, brute_force(q, bank.bank, 5, mask, q_lab >= 0))
    # the threshold switches the constraint of unlabelled queries off and on
    sel.threshold = 1.01
    assert sel(q, bank, 5, sample_idx=q_idx, labels=q_gt).constrained.tolist() == \
        [True, False, False, False]
    sel.threshold = 0.0
    assert sel(q, bank, 5, sample_idx=q_idx, labels=q_gt).constrained.all()
    # an untrained classifier gives no pseudo-label
    sel.trained.fill_(False)
    assert sel(q, bank, 5, sample_idx=q_idx, labels=q_gt).constrained.tolist() == \
        [True, False, False, False]


# ---------------------------------------------------------------------------- ranks
def test_unconstrained_ranks_match_sorting():
    bank = make_bank(seed=3)
    q = queries_from_bank(bank, [0, 5, 9])
    idx = torch.tensor([[0, 7, 40], [5, 1, 2], [9, 47, 30]])
    ranks = unconstrained_ranks(q, bank.bank, idx, chunk_size=10)
    for b in range(3):
        sims = (q[b] @ bank.bank.T).tolist()
        order = sorted(range(K), key=lambda j: (-sims[j], j))
        assert ranks[b].tolist() == [order.index(int(j)) + 1 for j in idx[b]]
    top = TopKSelector()(q, bank, 4).indices  # MSF's own picks have ranks 1..k
    assert unconstrained_ranks(q, bank.bank, top).tolist() == [[1, 2, 3, 4]] * 3


# ---------------------------------------------------------------------------- extension point
@MODELS.register_module(force=True)
class EvenSlotSelector(ConstrainedSelector):
    """A user-defined constraint: C = the even bank slots (registered here, named in a config)."""
    last = None

    def constraint_mask(self, query, bank, **side):
        mask = torch.zeros(query.shape[0], bank.size, dtype=torch.bool, device=query.device)
        mask[:, ::2] = True
        return mask, torch.ones(query.shape[0], dtype=torch.bool, device=query.device)

    def select(self, query, bank, k, **side):
        EvenSlotSelector.last = super().select(query, bank, k, **side)
        return EvenSlotSelector.last


def test_registered_selector_named_in_config_is_used():
    cfg = tiny_msf_cfg(size=64, topk=3, type='CMSF', target_bn='none',
                       constrained_selector=dict(type='EvenSlotSelector'))
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    g = torch.Generator().manual_seed(0)
    views = [torch.randn(8, 3, 16, 16, generator=g), torch.randn(8, 3, 16, 16, generator=g)]
    samples = [BaseDataElement(metainfo=dict(sample_idx=i), gt_label=i % 2) for i in range(8)]
    out = model(views, samples, mode='loss')
    assert EvenSlotSelector.last is not None
    assert (EvenSlotSelector.last.indices % 2 == 0).all()
    assert set(out) >= {'loss_constrained', 'loss_unconstrained', 'purity',
                        'unconstrained_purity', 'constrained_frac', 'rank_mean'}
    assert float(out['constrained_frac']) == 1.0
    (out['loss_constrained'] + out['loss_unconstrained']).backward()


# ---------------------------------------------------------------------------- lazy masks
def test_slot_mask_constructors_match_dense_references():
    from mmmsf.utils.slot_mask import SlotMask
    q_keys = torch.tensor([0, 2, -1, 1])
    slot_keys = torch.arange(K) % 3
    slot_keys[::7] = -1
    dense = (slot_keys[None] == q_keys[:, None]) & (slot_keys >= 0)[None]
    lazy = SlotMask.same_key(q_keys, slot_keys, K)
    assert torch.equal(lazy.to_dense(), dense)
    assert torch.equal(SlotMask.same_key(q_keys, lambda s, e: slot_keys[s:e], K).to_dense(),
                       dense)
    # blocks of any width concatenate to the whole mask; count is blockwise
    assert torch.equal(torch.cat([lazy.block(s, s + 5) for s in range(0, K, 5)], 1), dense)
    assert torch.equal(lazy.count(7).long(), dense.sum(1))
    assert torch.equal((~lazy).to_dense(), ~dense)
    rows = torch.tensor([True, False, True, False])
    assert torch.equal(lazy.or_rows(rows).to_dense(), dense | rows[:, None])
    assert torch.equal(lazy.rows(torch.tensor([3, 0])).to_dense(), dense[[3, 0]])
    idx = torch.tensor([[3, 40, 7], [0, 0, 47]])
    member = torch.tensor([[True, True, False], [True, True, True]])
    ref = torch.zeros(2, K, dtype=torch.bool)
    for b in range(2):
        ref[b, idx[b][member[b]]] = True
    sets = SlotMask.index_sets(idx, member, K)
    assert torch.equal(sets.to_dense(), ref)
    assert torch.equal(torch.cat([sets.block(s, s + 10) for s in range(0, K, 10)], 1), ref)
    assert torch.equal(SlotMask.full(2, K, False).to_dense(), torch.zeros(2, K, dtype=bool))


@pytest.mark.parametrize('selector', ['kmeans', 'supervised', 'two_queue'])
def test_constrained_search_builds_the_mask_one_block_at_a_time(selector, monkeypatch):
    """No (B, K) mask is materialised: every block the search asks for is at most chunk_size
    slots wide, and the result equals the dense-mask search."""
    from mmmsf.utils.slot_mask import SlotMask
    bank = make_bank(labels=torch.arange(K) % 4, sample_idx=torch.arange(K))
    bank.chunk_size = 8
    q = queries_from_bank(bank, [0, 5, 9, 30])
    if selector == 'kmeans':
        sel = KMeansSelector()
        sel.set_cluster_ids(torch.arange(K) % 5)
        side = dict(sample_idx=torch.tensor([0, 5, 9, 30]))
    elif selector == 'supervised':
        sel = SupervisedSelector()
        side = dict(labels=torch.tensor([0, 1, 1, -1]))
    else:
        sel = TwoQueueSelector(topk_prime=6, second_query='third_view')
        sel.bind(bank)
        sel.chunk_size = 8
        sel.second_bank.copy_(unit(K, seed=5))
        sel.second_valid.fill_(True)
        side = dict(extra_view_target=unit(4, seed=6))
    mask, constrained = sel.constraint_mask(q, bank, **side)
    assert isinstance(mask, SlotMask)
    widths = []
    block = SlotMask.block

    def recording_block(self, start, stop):
        out = block(self, start, stop)
        widths.append(out.shape[1])
        return out

    monkeypatch.setattr(SlotMask, 'block', recording_block)
    out = sel(q, bank, 7, **side)
    assert widths and max(widths) <= bank.chunk_size
    monkeypatch.undo()
    dense = mask.to_dense()
    ref = brute_force(q, bank.bank, 7, dense, constrained)
    assert torch.equal(out.indices, ref)
