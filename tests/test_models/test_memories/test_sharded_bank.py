"""The sharded memory bank against the replicated one, with 2 and 3 real gloo ranks.

In the same processes, a model with a replicated bank and the same model with
``memory_bank.sharded=True`` train side by side on the same global batches (each rank takes its
slice) for several steps with a bank wrap-around, for MSF's top-k and every CMSF selector. Every
query's neighbours (ties included: some images appear twice in a global batch, on different
ranks), every logged loss and statistic, and the assembled bank with its pointer (and M', the
slot labels and the per-image cache) must be equal, bit for bit. Resume across world sizes
(2 -> 3 ranks, sharded <-> replicated) must continue the uninterrupted run.
"""
import os

import pytest
import torch
from mmengine.structures import BaseDataElement

from mmmsf.registry import MODELS
from tests.gloo import ToyEncoder, free_port, init_gloo, start_gloo  # noqa: F401 (registers it)

B_GLOBAL, DIM, SIZE, NUM_IMAGES, STEPS = 6, 8, 12, 40, 4  # 24 writes wrap the 12-slot bank
VARIANTS = ('msf', 'cmsf_sup', 'cmsf_km', 'cmsf_pseudo', 'cmsf_2q', 'cmsf_2q_prev')


def model_cfg(variant: str, sharded: bool, topk: int = 5) -> dict:
    cfg = dict(type='MSF', backbone=dict(type='ToyEncoder', out=16),
               neck=dict(type='MLPNeck', in_channels=16, hid_channels=32, out_channels=DIM,
                         with_bn=False),
               predictor=dict(type='MLPNeck', in_channels=DIM, hid_channels=32,
                              out_channels=DIM, with_bn=False),
               memory_bank=dict(type='NNMemoryBank', size=SIZE, dim=DIM, sharded=sharded),
               topk=topk, target_bn='none')
    if variant == 'msf':
        return cfg
    cfg.update(type='CMSF', loss_weights=dict(constrained=0.5, unconstrained=0.5))
    selectors = dict(
        cmsf_sup=dict(type='SupervisedSelector'),
        cmsf_km=dict(type='KMeansSelector'),
        cmsf_pseudo=dict(type='PseudoLabelSelector', num_classes=3, threshold=0.0,
                         hid_channels=16),
        cmsf_2q=dict(type='TwoQueueSelector', topk_prime=4, second_query='third_view'),
        cmsf_2q_prev=dict(type='TwoQueueSelector', topk_prime=4,
                          second_query='previous_visit'))
    cfg['constrained_selector'] = selectors[variant]
    if variant in ('cmsf_km', 'cmsf_pseudo', 'cmsf_2q_prev'):
        cfg['embedding_cache'] = dict(type='EmbeddingCache')
    if variant == 'cmsf_2q':
        cfg['extra_view'] = 2
    return cfg


def global_batch(step: int):
    """Views and side information of the step's global batch. Image ``step`` mod 3 appears
    twice (first and last row, so on different ranks): its two targets are equal, and so are
    their similarities to everything -- the tie rule decides their order."""
    g = torch.Generator().manual_seed(1000 + step)
    views = [torch.randn(B_GLOBAL, 3, 8, 8, generator=g) for _ in range(3)]
    idx = torch.randperm(NUM_IMAGES, generator=g)[:B_GLOBAL]
    idx[-1] = idx[0]
    for v in views:
        v[-1] = v[0]
    labels = idx % 3
    return views, idx, labels


def local_batch(step: int, rank: int, world: int):
    views, idx, labels = global_batch(step)
    per = B_GLOBAL // world
    mine = slice(rank * per, (rank + 1) * per)
    samples = []
    for i, l in zip(idx[mine].tolist(), labels[mine].tolist()):
        ds = BaseDataElement(metainfo=dict(sample_idx=i))
        ds.gt_label = torch.tensor(l)
        samples.append(ds)
    return [v[mine] for v in views], samples


def build(variant: str, sharded: bool, seed: int = 0):
    torch.manual_seed(seed)
    model = MODELS.build(model_cfg(variant, sharded))
    model.init_weights()
    cache = getattr(model, 'embedding_cache', None)
    if cache is not None:
        cache.allocate(NUM_IMAGES)
    sel = getattr(model, 'constrained_selector', None)
    if variant == 'cmsf_pseudo':
        sel.set_labelled(torch.arange(NUM_IMAGES) % 2 == 0)  # half the images are labelled
        sel.load_classifier(sel.classifier.state_dict())  # "trained": pseudo-labels from now
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    return model, opt


class Recorder:
    """Wraps the model's selectors to keep the neighbours of every local query per call."""

    def __init__(self, model):
        self.calls = []
        for name in ('selector', 'constrained_selector'):
            sel = getattr(model, name, None)
            if sel is not None:
                original = sel.forward

                def wrapped(*a, _orig=original, _name=name, **kw):
                    out = _orig(*a, **kw)
                    self.calls.append((_name, out.indices.clone(), out.constrained.clone()))
                    return out

                sel.forward = wrapped


def train_steps(model, opt, steps, rank: int, world: int, average: bool = False):
    """Manual data-parallel steps (gradients averaged over the ranks); returns the loss dicts
    (this rank's values, or with ``average`` the losses' means over the ranks)."""
    logs = []
    for step in steps:
        views, samples = local_batch(step, rank, world)
        model.momentum_update(0.9)
        losses = model.loss(views, samples)
        total = sum(v for k, v in losses.items() if k.startswith('loss'))
        opt.zero_grad()
        total.backward()
        if world > 1:
            for p in model.parameters():
                if p.grad is not None:
                    torch.distributed.all_reduce(p.grad)
                    p.grad /= world
        opt.step()
        log = {k: v.detach().clone() for k, v in losses.items()}
        if average:  # the losses (every rank has them; statistics may be rank-specific)
            log = {k: v for k, v in log.items() if k.startswith('loss')}
            for v in log.values():
                if world > 1:
                    torch.distributed.all_reduce(v)
                    v /= world
        logs.append(log)
    return logs


def full_state(model) -> dict:
    """The whole model state (the bank gathered on rank 0): what a checkpoint holds."""
    with model.full_state():
        return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def compare_worker(rank: int, world: int, port: int, out_dir: str):
    init_gloo(rank, world, port)
    results = {}
    for variant in VARIANTS:
        runs = {}
        for sharded in (False, True):
            model, opt = build(variant, sharded)
            rec = Recorder(model)
            if variant == 'cmsf_km':  # no clusters yet (C = M), then a fixed clustering
                logs = train_steps(model, opt, range(2), rank, world)
                model.constrained_selector.set_cluster_ids(torch.arange(NUM_IMAGES) % 4)
                logs += train_steps(model, opt, range(2, STEPS), rank, world)
            else:
                logs = train_steps(model, opt, range(STEPS), rank, world)
            if variant == 'cmsf_km':  # the clustering hook: rank 0 clusters, ids broadcast
                from mmmsf.engine.hooks import KMeansClusterHook
                ids = KMeansClusterHook(num_clusters=3, niter=5).cluster(model)
                logs += train_steps(model, opt, range(STEPS, STEPS + 2), rank, world)
                logs.append(dict(ids=ids.clone()))
            runs[sharded] = dict(calls=rec.calls, logs=logs, state=full_state(model),
                                 local_rows=model.memory_bank.bank.shape[0],
                                 steps=STEPS + 2 if variant == 'cmsf_km' else STEPS)
        results[variant] = runs
        if variant == 'msf':  # a dense (R, K) mask, the same rows on every rank
            g = torch.Generator().manual_seed(7)
            q = torch.nn.functional.normalize(torch.randn(5, DIM, generator=g), dim=1)
            mask = torch.rand(5, SIZE, generator=g) > 0.6
            banks = [build(variant, s)[0].memory_bank for s in (False, True)]
            results['dense'] = [b.search(q, 5, mask) for b in banks]
    # bad input on a real process group
    from mmmsf.models.memories import NNMemoryBank
    errors = {}
    try:
        NNMemoryBank(size=SIZE + 1, dim=DIM, sharded=True)
    except ValueError as e:
        errors['world_does_not_divide'] = str(e)
    bank = NNMemoryBank(size=SIZE, dim=DIM, sharded=True)
    try:  # 5 x world targets: not a divisor of the 12 slots
        bank.enqueue(torch.nn.functional.normalize(torch.randn(5, DIM), dim=1))
    except ValueError as e:
        errors['not_multiple_of_global_batch'] = str(e)
    results['errors'] = errors
    torch.save(results, os.path.join(out_dir, f'compare_w{world}_r{rank}.pt'))
    torch.distributed.destroy_process_group()


@pytest.fixture(scope='module', params=[2, 3], ids=['2ranks', '3ranks'])
def compared(request, tmp_path_factory):
    world = request.param
    out = str(tmp_path_factory.mktemp(f'shard{world}'))
    start_gloo(compare_worker, (world, free_port(), out), nprocs=world)
    return world, [torch.load(os.path.join(out, f'compare_w{world}_r{r}.pt'),
                              weights_only=False) for r in range(world)]


@pytest.mark.parametrize('variant', VARIANTS)
def test_sharded_equals_replicated(compared, variant):
    world, per_rank = compared
    for rank, res in enumerate(per_rank):
        rep, sh = res[variant][False], res[variant][True]
        assert sh['local_rows'] == SIZE // world and rep['local_rows'] == SIZE
        # the neighbours of every query, every call, in order (ties by global slot)
        assert len(rep['calls']) == len(sh['calls']) >= STEPS
        for (n1, i1, c1), (n2, i2, c2) in zip(rep['calls'], sh['calls']):
            assert n1 == n2 and torch.equal(i1, i2) and torch.equal(c1, c2), (rank, n1)
        # every logged value: losses, purities, constraint statistics (and k-means ids)
        assert len(rep['logs']) == len(sh['logs'])
        for a, b in zip(rep['logs'], sh['logs']):
            assert a.keys() == b.keys()
            for key in a:
                assert torch.equal(a[key], b[key]), (rank, key)
        if rank == 0:  # the assembled state: bank, pointer, M', slot labels, cache
            assert rep['state'].keys() == sh['state'].keys()
            for key in rep['state']:
                assert torch.equal(rep['state'][key], sh['state'][key]), key
            assert int(sh['state']['memory_bank.ptr']) == sh['steps'] * B_GLOBAL % SIZE


def test_dense_mask_search(compared):
    world, per_rank = compared
    for res in per_rank:
        (s1, i1), (s2, i2) = res['dense']
        assert torch.equal(i1, i2)
        # the similarities come from GEMMs of other shapes (a shard's columns, all ranks'
        # queries): equal up to float32 rounding, not always bit for bit
        assert torch.allclose(s1, s2, rtol=0, atol=1e-6)
        assert bool(torch.isinf(s1).any())  # some rows have fewer than k slots in C


def test_ties_go_to_the_lower_global_slot(compared):
    """The duplicated image of each step is written to slots p and p + 5 (first and last row of
    the global batch, on the first and the last rank): both copies have the same similarity to
    either query, so both queries' first two neighbours are [p, p + 5] -- the copy's own slot
    comes second. With 3 ranks the two slots lie in different shards."""
    world, per_rank = compared
    for step in range(STEPS):
        p = step * B_GLOBAL % SIZE
        first = per_rank[0]['msf'][True]['calls'][step][1][0, :2]
        last = per_rank[-1]['msf'][True]['calls'][step][1][-1, :2]
        assert first.tolist() == last.tolist() == [p, p + 5], step


def test_bad_input_names_the_fix(compared):
    world, per_rank = compared
    errors = per_rank[0]['errors']
    assert 'multiple of the world size' in errors['world_does_not_divide']
    assert 'sharded=False' in errors['world_does_not_divide']
    assert 'multiple of the global batch' in errors['not_multiple_of_global_batch']


# ---------------------------------------------------------------------------- resume
def resume_worker(rank: int, world: int, port: int, out_dir: str, name: str, sharded: bool,
                  load: str, start: int, stop: int, save: str):
    """Train steps ``[start, stop)`` of the CMSF-2Q (previous visit) run -- bank, M' and the
    per-image cache all in play -- on ``world`` ranks, after loading checkpoint ``load`` (if
    any); write checkpoint ``save`` (if any) and this rank's record ``<name>_r<rank>.pt``."""
    init_gloo(rank, world, port)
    model, opt = build('cmsf_2q_prev', sharded)
    out = {}
    if load:
        state = torch.load(os.path.join(out_dir, load), weights_only=False)
        model.load_state_dict(state['model'])
        opt.load_state_dict(state['optim'])
        out['loaded'] = full_state(model)
    out['logs'] = train_steps(model, opt, range(start, stop), rank, world, average=True)
    out['state'] = full_state(model)
    if save and rank == 0:
        torch.save(dict(model=out['state'], optim=opt.state_dict()),
                   os.path.join(out_dir, save))
    torch.distributed.barrier()
    torch.save(out, os.path.join(out_dir, f'{name}_r{rank}.pt'))
    torch.distributed.destroy_process_group()


RESUME_RUNS = (  # name, world, sharded, load, steps, save
    ('full', 2, True, '', (0, 2 * STEPS), ''),
    ('first', 2, True, '', (0, STEPS), 'first.pt'),
    ('to3sharded', 3, True, 'first.pt', (STEPS, 2 * STEPS), ''),
    ('to3replicated', 3, False, 'first.pt', (STEPS, STEPS + 2), 'mid.pt'),
    ('back2sharded', 2, True, 'mid.pt', (STEPS + 2, 2 * STEPS), ''),
)


@pytest.fixture(scope='module')
def resumed(tmp_path_factory):
    """An uninterrupted 2-rank sharded run, and the same run stopped at step 4 and resumed on 3
    sharded ranks; on 3 replicated ranks, stopped again at step 6 and resumed on 2 sharded."""
    out = str(tmp_path_factory.mktemp('resume'))
    for name, world, sharded, load, (a, b), save in RESUME_RUNS:
        start_gloo(resume_worker, (world, free_port(), out, name, sharded, load, a, b, save),
                   nprocs=world)
    records = {name: torch.load(os.path.join(out, f'{name}_r0.pt'), weights_only=False)
               for name, *_ in RESUME_RUNS}
    for ckpt in ('first.pt', 'mid.pt'):
        records[ckpt] = torch.load(os.path.join(out, ckpt), weights_only=False)['model']
    return records


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    # the global batch is the same; only the split of the losses' means over ranks differs
    return torch.allclose(a, b, rtol=0, atol=1e-5)


def test_resume_reshards_the_saved_state_exactly(resumed):
    for run, ckpt in (('to3sharded', 'first.pt'), ('to3replicated', 'first.pt'),
                      ('back2sharded', 'mid.pt')):
        saved, loaded = resumed[ckpt], resumed[run]['loaded']
        assert saved.keys() == loaded.keys()
        for key, value in saved.items():  # bank, pointer, M', cache: whole and equal
            assert torch.equal(loaded[key], value), (run, key)
    assert int(resumed['first.pt']['memory_bank.ptr']) == STEPS * B_GLOBAL % SIZE


@pytest.mark.parametrize('runs', [('first', 'to3sharded'),
                                  ('first', 'to3replicated', 'back2sharded')],
                         ids=['2sharded-3sharded', '2sharded-3replicated-2sharded'])
def test_resume_across_world_sizes_continues_the_run(resumed, runs):
    full = resumed['full']
    logs = [log for run in runs for log in resumed[run]['logs']]
    assert len(logs) == len(full['logs']) == 2 * STEPS
    for step, (a, b) in enumerate(zip(full['logs'], logs)):
        assert a.keys() == b.keys()
        for key in a:
            assert close(a[key], b[key]), (step, key)
    end = resumed[runs[-1]]['state']
    assert int(end['memory_bank.ptr']) == int(full['state']['memory_bank.ptr'])
    for key in ('memory_bank.bank', 'memory_bank.sample_idx',
                'constrained_selector.second_bank', 'embedding_cache.embeddings'):
        assert close(end[key].float(), full['state'][key].float()), key


def test_checkpoint_with_another_bank_shape_names_the_fix():
    from mmmsf.models.memories import NNMemoryBank
    bank = NNMemoryBank(size=SIZE, dim=DIM, sharded=True)
    other = NNMemoryBank(size=2 * SIZE, dim=DIM).state_dict()
    with pytest.raises(ValueError, match='model.memory_bank.size'):
        bank.load_state_dict(other)
