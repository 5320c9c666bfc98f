"""Memory of mean shift: bytes held by the banks and caches against their K x D x bytes payload,
and what one step's neighbour search allocates on top (goal: nothing bank-sized beyond one
distance block of B x chunk_size floats; a constrained CMSF search adds one B x chunk_size bool
block of its lazy C mask and the block's negation).

Held bytes are read from the modules' buffers (NNMemoryBank, CMSF-2Q's second bank, the
embedding cache, per-image cluster ids). Per-step allocations are recorded with the torch
profiler's memory events (CPU allocator, or the CUDA caching allocator with ``--device cuda``)
around the mean-shift part of a step: enqueue of the batch's targets + neighbour selection.
faiss allocates its distance block inside the library, where torch's profiler cannot see it;
its size is set to the same bound (``mmmsf.utils.knn_search.blas_search``).

    python -m benchmarks.memory [--device cuda] [--quick]
"""
import argparse
import json
import os
import tempfile

import torch
import torch.nn.functional as F

from benchmarks.common import (BANK_SIZES, PRESETS, QUICK, add_common_args,
                               print_table, result_payload, setup, write_json)

# images in the bundled subset, the full CIFAR-10 JPEG set, ImageNet-1k train
DATASET_SIZES = (3000, 20000, 1281167)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_common_args(p, 'memory')
    p.add_argument('--bank-sizes', type=int, nargs='+', default=None)
    p.add_argument('--dataset-sizes', type=int, nargs='+', default=None)
    p.add_argument('--batch', type=int, default=None)
    p.add_argument('--dim', type=int, default=None)
    return p.parse_args(argv)


def profile_allocations(fn, device: torch.device):
    """(peak bytes allocated above the start, largest single allocation, total allocated) of
    ``fn()`` on ``device``, from the torch profiler's memory events."""
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    with profile(activities=acts, profile_memory=True) as prof:
        fn()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
    fd, path = tempfile.mkstemp(suffix='.json')
    os.close(fd)
    try:
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f)['traceEvents']
    finally:
        os.remove(path)
    want = 1 if device.type == 'cuda' else 0  # kineto's device type: 0 CPU, 1 CUDA
    mem = sorted((e for e in events if e.get('name') == '[memory]'
                  and int(e['args'].get('Device Type', 0)) == want),
                 key=lambda e: (e['ts'], e['args'].get('Ev Idx', 0)))
    live = peak = largest = total = 0
    for e in mem:
        nbytes = int(e['args']['Bytes'])
        live += nbytes
        peak = max(peak, live)
        if nbytes > 0:
            largest = max(largest, nbytes)
            total += nbytes
    return peak, largest, total


def mib(x) -> float:
    return x / 2**20


def main(argv=None):
    args = parse_args(argv)
    device = setup(args)
    from mmmsf.models.memories import EmbeddingCache, NNMemoryBank
    from mmmsf.models.selectors import KMeansSelector, TopKSelector, TwoQueueSelector
    from mmmsf.models.selectors.constrained_selector import ConstrainedSelector
    p = QUICK if args.quick else PRESETS[device.type]
    batch, dim = args.batch or p['batch'], args.dim or p['dim']
    sizes = args.bank_sizes or ([1024, 4096] if args.quick else list(BANK_SIZES))
    n_images = args.dataset_sizes or ([500, 2000] if args.quick else list(DATASET_SIZES))
    k = 5

    # ------------------------------------------------------------------ held
    held_rows, held_table = [], []

    def held(what, shape, dtype_name, nbytes, payload):
        row = dict(what=what, shape=list(shape), dtype=dtype_name, bytes=nbytes,
                   payload_bytes=payload, ratio=nbytes / payload)
        held_rows.append(row)
        held_table.append([what, ' x '.join(f'{s:,}' for s in shape), dtype_name,
                           mib(nbytes), mib(payload), row['ratio']])

    for size in sizes:
        for dtype in ('float32', 'float16'):
            bank = NNMemoryBank(size, dim, dtype=dtype).to(device)
            esize = bank.bank.element_size()
            held('NNMemoryBank (bank, labels, indices, pointers)', (size, dim), dtype,
                 bank.nbytes, size * dim * esize)
            if dtype == 'float32':
                sel = TwoQueueSelector().to(device)
                sel.bind(bank)
                nbytes = sum(b.numel() * b.element_size() for b in sel.buffers())
                held("CMSF-2Q second bank M' (+ valid flags)", (size, dim), dtype, nbytes,
                     size * dim * esize)
            del bank
    if not args.quick and device.type == 'cpu' and dim != 512:
        bank = NNMemoryBank(128000, 512)
        held('NNMemoryBank, paper 128K x 512 (Table 1: < 0.5 GB)', (128000, 512), 'float32',
             bank.nbytes, 128000 * 512 * 4)
        del bank
    for n in n_images:
        for dtype in ('float32', 'float16'):
            cache = EmbeddingCache(dim=dim, dtype=dtype, placement='cpu')
            cache.allocate(n)
            held('EmbeddingCache (CMSF-KM, semi-sup., 2Q prev. visit)', (n, dim), dtype,
                 cache.nbytes, n * dim * cache.embeddings.element_size())
            del cache
        km = KMeansSelector()
        km.allocate_per_image('cluster_ids', n, -1)
        held('KMeansSelector cluster ids', (n, ), 'int64',
             km.cluster_ids.numel() * km.cluster_ids.element_size(), n * 8)

    # ------------------------------------------------------------------ per step
    step_rows, step_table = [], []
    g = torch.Generator().manual_seed(0)
    for size in sizes:
        for dtype, search, selector in [('float32', 'torch', 'top-k'),
                                        ('float16', 'torch', 'top-k'),
                                        ('float32', 'faiss', 'top-k'),
                                        ('float32', 'torch', 'CMSF-2Q')]:
            bank = NNMemoryBank(size, dim, dtype=dtype, search=search).to(device)
            chunk = bank.chunk_size
            u = F.normalize(torch.randn(batch, dim, generator=g), dim=1).to(device)
            u2 = F.normalize(torch.randn(batch, dim, generator=g), dim=1).to(device)
            if selector == 'top-k':
                sel = TopKSelector().to(device)
                side = {}
            else:
                sel = TwoQueueSelector().to(device)
                sel.bind(bank)
                side = dict(extra_view_target=u2)

            def step():
                slots = bank.enqueue(u)
                if isinstance(sel, ConstrainedSelector):
                    sel.after_enqueue(bank, slots, u, **side)
                return sel(u, bank, k, **side)

            step()  # warm-up (the CUDA allocator caches, faiss/MKL initialise)
            peak, largest, total = profile_allocations(step, device)
            block = batch * min(chunk, size) * 4
            if dtype != 'float32' and device.type == 'cpu':
                block += min(chunk, size) * dim * 4  # float32 staging copy of one key block
            if selector != 'top-k':  # one bool block of the lazy C mask and its negation
                block += 2 * batch * min(chunk, size)
            bank_bytes = bank.bank.numel() * bank.bank.element_size()
            row = dict(bank_size=size, dim=dim, batch=batch, bank_dtype=dtype, search=search,
                       selector=selector, chunk_size=chunk, peak_bytes=peak,
                       largest_alloc_bytes=largest, total_alloc_bytes=total,
                       distance_block_bytes=block, bank_bytes=bank_bytes,
                       within_one_block=(bool(peak <= 1.1 * block + 2**16)
                                         if search == 'torch' else None))
            step_rows.append(row)
            step_table.append([size, dtype, search, selector, mib(bank_bytes), mib(block),
                               mib(peak), mib(largest),
                               {True: 'yes', False: 'NO', None: 'n/a (inside faiss)'}[
                                   row['within_one_block']]])
            del bank, sel
    settings = dict(batch=batch, dim=dim, k=k, bank_sizes=sizes, dataset_sizes=n_images)
    print_table('Bytes held vs. payload (K x D x bytes per element)',
                ['what', 'shape', 'dtype', 'MiB held', 'MiB payload', 'held / payload'],
                held_table)
    print_table(f'Allocations of one step\'s enqueue + neighbour selection (batch {batch}, '
                f'D={dim}, k={k}, {device.type})',
                ['bank', 'dtype', 'search', 'selector', 'bank MiB', 'one block MiB',
                 'peak MiB', 'largest alloc MiB', 'within one block'], step_table)
    write_json(args.out, result_payload('memory', args, device, settings, step_rows,
                                        extra=dict(held=held_rows)))
    return held_rows, step_rows


if __name__ == '__main__':
    main()
