"""The sharded memory bank: bytes per rank, step time against the replicated bank, traffic, and
a cost model of how far the design scales.

1. **Bytes per rank**: the bank's buffers on each rank (must be ``K D bytes / W`` plus the
   per-slot labels and dataset indices).
2. **Step time**: ``W`` gloo ranks on this machine train an MSF model with a replicated bank and
   the same model with a sharded one, one step of each in turn (alternating which goes first),
   on the same real-image batches; the reported ratio is the median over the rounds of the
   paired ratios sharded / replicated (goal <= 1.05 at 128K and 1M slots).
3. **Traffic**: bytes each rank sends and receives in the step's Python-level collectives
   (the bank's and ShuffleBN's; DDP's gradient all-reduce is the same in both and not counted).
4. **Cost model** (printed, no measurement): memory per GPU, search FLOPs per GPU and the
   sharded bank's communication per step for W = 8..512 GPUs and K = 1M..100M slots, at a given
   per-GPU bandwidth.

    python -m benchmarks.sharded_bank [--quick] [--world 2] [--bank-sizes 128000 1024000]
"""
import argparse
import os.path as osp
import time
from typing import Dict, List

import torch

from benchmarks.common import (DEFAULT_DATA_ROOT, add_common_args, machine_info,
                               median, msf_cfg, preset, print_table, real_batches,
                               result_payload, setup, write_json)

GOAL = 1.05
MODEL_WORLDS = (8, 16, 32, 64, 128, 256, 512)
MODEL_SIZES = (1_000_000, 10_000_000, 100_000_000)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_common_args(p, 'sharded_bank')
    p.add_argument('--world', type=int, default=2, help='gloo ranks on this machine')
    p.add_argument('--bank-sizes', type=int, nargs='+', default=None)
    p.add_argument('--repeats', type=int, default=5, help='measurement rounds')
    p.add_argument('--search', default='torch', choices=['torch', 'faiss', 'auto'])
    p.add_argument('--batch', type=int, default=None, help='override the preset batch per rank')
    p.add_argument('--img-size', type=int, default=None, help='override the preset image size')
    p.add_argument('--data-root', default=DEFAULT_DATA_ROOT)
    p.add_argument('--model-batch', type=int, default=256, help='cost model: batch per GPU')
    p.add_argument('--model-dim', type=int, default=512, help='cost model: embedding dim')
    p.add_argument('--model-k', type=int, default=5, help='cost model: neighbours')
    p.add_argument('--model-bytes', type=int, default=4, help='cost model: bytes per value')
    p.add_argument('--bandwidth-gbps', type=float, default=100.0,
                   help='cost model: per-GPU network bandwidth in Gbit/s')
    p.add_argument('--tflops', type=float, default=50.0,
                   help='cost model: sustained search GEMM TFLOP/s per GPU')
    return p.parse_args(argv)


# ---------------------------------------------------------------------------- cost model
def step_traffic(world: int, batch: int, dim: int, k: int, value_bytes: int = 4,
                 sharded: bool = True) -> Dict[str, float]:
    """Bytes one rank receives per MSF step in the bank's collectives (sends are the same).

    * targets: the all-gather of the step's targets for the FIFO write (both banks);
    * candidates: the all-to-all of every shard's top-k (similarity + slot, 16 bytes) for the
      queries this rank merges, and the all-gather of the merged lists;
    * neighbours: the all-gather of the requested slots (8 bytes) and the rows this rank's
      loss needs (``B k D`` values, the remote share of them);
    * labels: the same request for the purity's neighbour labels (8 bytes each).
    """
    remote = (world - 1) / world
    out = dict(targets=(world - 1) * batch * (dim * value_bytes + 16))
    if sharded:
        rows = world * batch
        out['candidates'] = remote * rows * k * 16 + (world - 1) * batch * k * 16
        out['neighbours'] = (world - 1) * batch * k * 8 + remote * batch * k * dim * value_bytes
        out['labels'] = (world - 1) * batch * (k - 1) * 8 + remote * batch * (k - 1) * 8
    out['total'] = sum(out.values())
    return out


def cost_model(args) -> List[Dict]:
    b, d, k, nb = args.model_batch, args.model_dim, args.model_k, args.model_bytes
    bw = args.bandwidth_gbps * 1e9 / 8
    rows = []
    for size in MODEL_SIZES:
        for world in MODEL_WORLDS:
            mem = size * d * nb / world + size / world * 16
            rep = size * d * nb + size * 16
            traffic = step_traffic(world, b, d, k, nb)
            rep_traffic = step_traffic(world, b, d, k, nb, sharded=False)
            rows.append(dict(
                bank_size=size, world=world, gib_per_gpu=mem / 2**30,
                replicated_gib_per_gpu=rep / 2**30,
                search_gflop_per_gpu=2.0 * world * b * (size / world) * d / 1e9,
                search_ms_at_tflops=2.0 * b * size * d / (args.tflops * 1e12) * 1e3,
                mib_per_step=traffic['total'] / 2**20,
                extra_mib_vs_replicated=(traffic['total'] - rep_traffic['total']) / 2**20,
                ms_per_step_at_bw=1e3 * traffic['total'] / bw,
                extra_ms_vs_replicated=1e3 * (traffic['total'] - rep_traffic['total']) / bw))
    return rows


def print_cost_model(args, rows: List[Dict]) -> str:
    return print_table(
        f'Cost model: batch {args.model_batch}/GPU, D={args.model_dim}, k={args.model_k}, '
        f'{args.model_bytes}-byte values, {args.bandwidth_gbps:g} Gbit/s and '
        f'{args.tflops:g} TFLOP/s per GPU (received bytes per rank; sends are the same). Each '
        'rank searches all W x B queries in its K/W slots: the search FLOPs per GPU are those '
        'of the replicated bank, the memory is 1/W of it.',
        ['K', 'GPUs', 'bank GiB/GPU', 'replicated GiB/GPU', 'search GFLOP/GPU/step',
         'search ms', 'comm MiB/step', 'of which beyond replicated', 'comm ms/step',
         'beyond replicated ms'],
        [[r['bank_size'], r['world'], r['gib_per_gpu'], r['replicated_gib_per_gpu'],
          r['search_gflop_per_gpu'], r['search_ms_at_tflops'], r['mib_per_step'],
          r['extra_mib_vs_replicated'], r['ms_per_step_at_bw'], r['extra_ms_vs_replicated']]
         for r in rows])


# ---------------------------------------------------------------------------- measurements
class TrafficCounter:
    """Counts the payload bytes a rank receives in Python-level collectives (the bank's,
    the enqueue's all-gather, ShuffleBN's); DDP's C++ gradient all-reduce is not seen."""

    NAMES = ('all_gather', 'all_to_all_single', 'all_reduce', 'gather', 'broadcast')

    def __init__(self):
        import torch.distributed as dist
        self.dist, self.bytes, self.on = dist, 0, False
        self.originals = {n: getattr(dist, n) for n in self.NAMES}
        for name in self.NAMES:
            setattr(dist, name, self._wrap(name, self.originals[name]))

    def _wrap(self, name, fn):
        def counted(*args, **kwargs):
            if self.on:
                self.bytes += self._received(name, args, kwargs)
            return fn(*args, **kwargs)
        return counted

    def _received(self, name, args, kwargs) -> int:
        dist = self.dist
        world, rank = dist.get_world_size(), dist.get_rank()

        def nbytes(t):
            return t.numel() * t.element_size()

        if name == 'all_gather':
            return sum(nbytes(t) for i, t in enumerate(args[0]) if i != rank)
        if name == 'all_to_all_single':
            out = args[0]
            splits = args[2] if len(args) > 2 else kwargs.get('output_split_sizes')
            row = nbytes(out) // max(1, out.shape[0]) if out.dim() else 0
            own = (splits[rank] if splits else out.shape[0] // world) * row
            return nbytes(out) - own
        if name == 'all_reduce':
            return nbytes(args[0])
        if name == 'gather':
            bucket = args[1] if len(args) > 1 else kwargs.get('gather_list')
            return sum(nbytes(t) for i, t in enumerate(bucket or []) if i != rank)
        src = args[1] if len(args) > 1 else kwargs.get('src', 0)
        return 0 if src == rank else nbytes(args[0])

    def restore(self):
        for name, fn in self.originals.items():
            setattr(self.dist, name, fn)


class BankTimer:
    """Seconds spent in the bank's part of a step: the enqueue (its all-gather included), the
    selector (the search and its collectives), the neighbour rows and labels."""

    def __init__(self, model):
        self.seconds = 0.0
        bank = model.memory_bank
        for obj, name in ((bank, 'enqueue'), (bank, 'get'), (bank, 'get_labels'),
                          (model.selector, 'forward')):
            setattr(obj, name, self._timed(getattr(obj, name)))

    def _timed(self, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            self.seconds += time.perf_counter() - t0
            return out
        return timed

    def pop(self) -> float:
        s, self.seconds = self.seconds, 0.0
        return s


def _worker(rank: int, world: int, port: int, args, p: Dict, sizes: List[int], out_path: str):
    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel

    from benchmarks.common import build_model, build_optim_wrapper

    def train_step(ddp, data, optim_wrapper):  # MomentumUpdateHook's EMA, then the DDP step
        ddp.module.momentum_update(0.99)
        return ddp.train_step(data, optim_wrapper)
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=world)
    args.threads = 1
    device = setup(args)
    batches = real_batches(args.data_root, p['img_size'], p['batch'], 2, views=2)
    batches = batches[rank % len(batches):] + batches[:rank % len(batches)]
    counter = TrafficCounter()
    rows = []
    for size in sizes:
        engines = {}
        for sharded in (False, True):
            cfg = msf_cfg(p, size, search=args.search, target_bn='shuffle')
            cfg['memory_bank']['sharded'] = sharded
            model = build_model(cfg, device)
            timer = BankTimer(model)
            ddp = MMDistributedDataParallel(module=model, device_ids=None,
                                            broadcast_buffers=False)
            engines[sharded] = (model, ddp, build_optim_wrapper(model), timer)
        for sharded, (model, ddp, ow, timer) in engines.items():  # warm-up, one counted step
            train_step(ddp, batches[0], ow)
            counter.on, counter.bytes = True, 0
            train_step(ddp, batches[1], ow)
            counter.on = False
            timer.pop()
            engines[sharded] = (model, ddp, ow, timer, counter.bytes)
        times = {False: [], True: []}
        bank_times = {False: [], True: []}
        ratios, predicted = [], []
        for r in range(args.repeats):
            order = (False, True) if r % 2 == 0 else (True, False)
            got = {}
            for sharded in order:
                model, ddp, ow, timer, _ = engines[sharded]
                dist.barrier()
                t0 = time.perf_counter()
                train_step(ddp, batches[r % len(batches)], ow)
                dist.barrier()
                got[sharded] = time.perf_counter() - t0
                times[sharded].append(got[sharded])
                bank_times[sharded].append(timer.pop())
            ratios.append(got[True] / got[False])
            # what the bank's own extra time predicts (far less sensitive to other jobs)
            predicted.append(1 + (bank_times[True][-1] - bank_times[False][-1]) / got[False])
        rep_model, sh_model = engines[False][0], engines[True][0]
        sh_bank = sh_model.memory_bank
        emb_bytes = sh_bank.bank.numel() * sh_bank.bank.element_size()
        expected = size * p['dim'] * sh_bank.bank.element_size() // world
        rows.append(dict(
            bank_size=size, world=world, dim=p['dim'], batch_per_rank=p['batch'],
            bank_bytes_per_rank=sh_bank.nbytes,
            replicated_bank_bytes=rep_model.memory_bank.nbytes,
            embedding_bytes_per_rank=emb_bytes, expected_embedding_bytes=expected,
            label_bytes_per_rank=sh_bank.nbytes - emb_bytes,
            replicated_step_ms=1e3 * median(times[False]),
            sharded_step_ms=1e3 * median(times[True]),
            ratio=median(ratios), ratios=ratios,
            replicated_bank_ms=1e3 * median(bank_times[False]),
            sharded_bank_ms=1e3 * median(bank_times[True]),
            predicted_ratio=median(predicted), predicted_ratios=predicted,
            sharded_comm_bytes=engines[True][4], replicated_comm_bytes=engines[False][4]))
        del engines
    counter.restore()
    if rank == 0:
        torch.save(rows, out_path)
    dist.barrier()
    dist.destroy_process_group()


def measure(args, p: Dict, sizes: List[int]) -> List[Dict]:
    """Run the ``args.world`` gloo ranks (loopback) and return rank 0's rows."""
    import socket
    import tempfile

    import torch.multiprocessing as mp
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = osp.join(tmp, 'rows.pt')
        mp.spawn(_worker, args=(args.world, port, args, p, sizes, out), nprocs=args.world,
                 join=True)
        return torch.load(out, weights_only=False)


def main(argv=None):
    args = parse_args(argv)
    p = preset(args)
    sizes = args.bank_sizes or ([512, 2048] if args.quick else [128000, 1024000])
    if args.quick:
        args.repeats = 2
    global_batch = p['batch'] * args.world
    for s in sizes:
        if s % global_batch:
            raise SystemExit(f'bank size {s} is not a multiple of the global batch '
                             f'{global_batch} ({args.world} ranks x {p["batch"]}).')
    device = setup(args)
    machine_at_start = machine_info(device)
    rows = measure(args, p, sizes)
    print_table(
        f'Sharded vs replicated bank, {args.world} gloo ranks on this CPU (1 thread each), '
        f'ResNet-{p["depth"]} at {p["img_size"]} px, batch {p["batch"]}/rank, D={p["dim"]}; '
        f'step = median over {args.repeats} rounds, '
        'ratio = median of the paired ratios',
        ['K', 'bank bytes/rank', 'K*D*4/W', 'labels+idx bytes/rank', 'replicated bytes',
         'replicated step ms', 'sharded step ms', 'ratio', 'bank ms replicated', 'sharded',
         'ratio the bank time predicts', 'goal', 'comm bytes/step sharded', 'replicated'],
        [[r['bank_size'], r['bank_bytes_per_rank'], r['expected_embedding_bytes'],
          r['label_bytes_per_rank'], r['replicated_bank_bytes'], r['replicated_step_ms'],
          r['sharded_step_ms'], r['ratio'], r['replicated_bank_ms'], r['sharded_bank_ms'],
          r['predicted_ratio'], f'<= {GOAL}', r['sharded_comm_bytes'],
          r['replicated_comm_bytes']] for r in rows])
    model_rows = cost_model(args)
    print_cost_model(args, model_rows)
    write_json(args.out, result_payload(
        'sharded_bank', args, device,
        dict(world=args.world, bank_sizes=sizes, repeats=args.repeats, search=args.search,
             preset=p, goal=GOAL, bandwidth_gbps=args.bandwidth_gbps),
        rows, extra=dict(cost_model=model_rows, machine_at_start=machine_at_start)))
    return rows


if __name__ == '__main__':
    main()
