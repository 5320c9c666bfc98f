"""Two gloo processes vs. one: identical banks, and (BN-free) identical losses to 1 x 2b."""
import os

import pytest
import torch
import torch.nn as nn

from mmmsf.registry import MODELS
from tests.gloo import ToyEncoder, free_port, init_gloo, start_gloo  # noqa: F401 (registers it)

STEPS, B, DIM = 4, 4, 8


def toy_cfg():
    return dict(type='MSF', backbone=dict(type='ToyEncoder', out=16),
                neck=dict(type='MLPNeck', in_channels=16, hid_channels=32, out_channels=DIM,
                          with_bn=False),
                predictor=dict(type='MLPNeck', in_channels=DIM, hid_channels=32,
                               out_channels=DIM, with_bn=False),
                memory_bank=dict(type='NNMemoryBank', size=32, dim=DIM), topk=3,
                target_bn='none')


def global_batch(step):
    g = torch.Generator().manual_seed(100 + step)
    n = 2 * B
    return [torch.randn(n, 3, 8, 8, generator=g), torch.randn(n, 3, 8, 8, generator=g)]


def run(rank: int, world: int, port: int, out_dir: str):
    from mmengine.registry import init_default_scope
    from mmengine.structures import BaseDataElement
    if world > 1:
        init_gloo(rank, world, port)
    else:
        init_default_scope('mmmsf')
    torch.manual_seed(0)
    model = MODELS.build(toy_cfg())
    model.init_weights()
    net = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    per = 2 * B // world
    rec = dict(loss=[], bank=[], sample_idx=[])
    for step in range(STEPS):
        x = [v[rank * per:(rank + 1) * per] for v in global_batch(step)]
        ds = [BaseDataElement(metainfo=dict(sample_idx=rank * per + i + 100 * step))
              for i in range(per)]
        model.momentum_update(0.9)
        loss = net(x, ds, mode='loss')['loss']
        opt.zero_grad()
        loss.backward()
        opt.step()
        if world > 1:
            loss = loss.detach().clone()
            torch.distributed.all_reduce(loss)
            loss /= world
        rec['loss'].append(float(loss))
        rec['bank'].append(model.memory_bank.bank.clone())
        rec['sample_idx'].append(model.memory_bank.sample_idx.clone())
    # ShuffleBN's cross-rank shuffle is undone exactly by the unshuffle
    from mmmsf.utils.dist_utils import batch_shuffle, batch_unshuffle
    x = torch.arange(6 * world, dtype=torch.float32).view(-1, 1)[rank * 6:(rank + 1) * 6]
    xs, unshuffle = batch_shuffle(x)
    rec['shuffled'] = xs.clone()
    rec['unshuffled'] = batch_unshuffle(xs * 10, unshuffle) / 10
    rec['local'] = x
    torch.save(rec, os.path.join(out_dir, f'world{world}_rank{rank}.pt'))
    if world > 1:
        torch.distributed.destroy_process_group()


@pytest.fixture(scope='module')
def records(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('ddp'))
    run(0, 1, 0, out)
    start_gloo(run, (2, free_port(), out), nprocs=2)
    return {k: torch.load(os.path.join(out, f'{k}.pt'))
            for k in ('world1_rank0', 'world2_rank0', 'world2_rank1')}


def test_ranks_hold_identical_banks_after_every_step(records):
    r0, r1 = records['world2_rank0'], records['world2_rank1']
    for step in range(STEPS):
        assert torch.equal(r0['bank'][step], r1['bank'][step])
        assert torch.equal(r0['sample_idx'][step], r1['sample_idx'][step])


def test_bank_filled_with_both_ranks_in_rank_order(records):
    idx = records['world2_rank0']['sample_idx'][STEPS - 1]
    for step in range(STEPS):  # rank 0's B entries, then rank 1's, at slots 2B*step...
        expect = [i + 100 * step for i in range(2 * B)]
        assert idx[2 * B * step:2 * B * (step + 1)].tolist() == expect


def test_two_processes_equal_one_process_with_double_batch(records):
    one, two = records['world1_rank0'], records['world2_rank0']
    for step in range(STEPS):
        assert abs(one['loss'][step] - two['loss'][step]) < 1e-5, step
        assert torch.allclose(one['bank'][step], two['bank'][step], atol=1e-5)
    assert one['loss'][0] != one['loss'][-1]  # the model did change


def test_shuffle_bn_round_trip_across_ranks(records):
    r0, r1 = records['world2_rank0'], records['world2_rank1']
    for r in (r0, r1):
        assert torch.equal(r['unshuffled'], r['local'])
    # the two ranks together hold a permutation of the global batch
    both = torch.cat([r0['shuffled'], r1['shuffled']]).flatten().sort().values
    assert torch.equal(both, torch.arange(12, dtype=torch.float32))
