"""What mean shift costs per training step: MSF step time / BYOL-asym step time (paper Table 1).

MSF and BYOL-asym differ only in the memory bank and k (BYOL-asym = MSF with k = 1 and a bank
that holds one batch's worth, configs/byol), so one model is trained side by side in one
process with the same backbone, batch, real-image data and threads. Every round times each
MSF variant (banks of 16K, 128K and 1M, each with the torch and the faiss search) right next to
a BYOL-asym step, in alternating order; the reported ratio is the median of these paired
ratios over the rounds. The NN-search share is the time spent in ``bank.search`` within the MSF
steps; ``1 + (MSF search - BYOL-asym search) / BYOL-asym step`` is the ratio these timed
searches alone predict, which is far less sensitive than whole-step times to other jobs on a
shared machine. Goals (paper: 0.72% at 128K, 6.78% at 1M on a GPU): ratio <= 1.03 at 128K and
<= 1.10 at 1M on the CPU preset, <= 1.01 and <= 1.05 with ``--device cuda``.

    python -m benchmarks.step_overhead [--device cuda] [--quick] [--repeats 5]
"""
import argparse
import os

import torch

from benchmarks.common import (BANK_SIZES, DEFAULT_DATA_ROOT, SearchTimer,
                               add_common_args, build_model, build_optim_wrapper, median,
                               msf_cfg, preset, print_table, real_batches, result_payload,
                               setup, sync, train_step, usable_searches, write_json)

# ratio goals per device: the CPU preset's, and the paper's GPU setting's (ResNet-50, 224 px)
GOALS = {'cpu': {128000: 1.03, 1024000: 1.10}, 'cuda': {128000: 1.01, 1024000: 1.05}}
PAPER_SEARCH_SHARE = {128000: 0.0072, 1024000: 0.0678}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_common_args(p, 'step_overhead')
    p.add_argument('--bank-sizes', type=int, nargs='+', default=None)
    p.add_argument('--searches', nargs='+', default=['torch', 'faiss'],
                   choices=['torch', 'faiss'])
    p.add_argument('--repeats', type=int, default=5, help='measurement rounds')
    p.add_argument('--steps', type=int, default=1, help='steps per variant and round')
    p.add_argument('--batch', type=int, default=None, help='override the preset batch')
    p.add_argument('--img-size', type=int, default=None, help='override the preset size')
    p.add_argument('--bank-dtype', default='float32',
                   choices=['float32', 'float16', 'bfloat16'])
    p.add_argument('--channels-last', action='store_true')
    p.add_argument('--amp', action='store_true',
                   help='mixed precision (AmpOptimWrapper; CUDA only, as in mmengine)')
    p.add_argument('--compare-formats', action='store_true',
                   help='also time BYOL-asym with channels_last (and AMP on CUDA) in the '
                        'same rounds, to see whether they help on this machine')
    p.add_argument('--data-root', default=DEFAULT_DATA_ROOT)
    return p.parse_args(argv)


def step_flops(model, data, optim_wrapper) -> float:
    """FLOPs (multiply+add = 2) of one full step, backward included."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        train_step(model, data, optim_wrapper)
    return float(counter.get_total_flops())


def main(argv=None):
    args = parse_args(argv)
    device = setup(args)
    p = preset(args)
    batch = p['batch']
    args.searches = usable_searches(device, args.searches)
    sizes = args.bank_sizes or ([512, 2048, 8192] if args.quick else list(BANK_SIZES))
    if args.quick:
        args.repeats, args.steps = 1, 1
    for s in sizes:
        if s % batch:
            raise SystemExit(f'bank size {s} is not a multiple of the batch {batch}.')
    byol_size = max(1024, batch) // batch * batch
    if args.amp and device.type != 'cuda':
        raise SystemExit('--amp needs CUDA (mmengine\'s AmpOptimWrapper is CUDA-only); drop it '
                         'on the CPU.')

    from mmmsf.models.memories import NNMemoryBank
    model = build_model(msf_cfg(p, byol_size, topk=1, channels_last=args.channels_last,
                                bank_dtype=args.bank_dtype), device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optim_wrapper = build_optim_wrapper(model, amp=args.amp)
    engines = {'': (model, optim_wrapper)}
    if args.compare_formats:
        import copy
        cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
        cl.data_preprocessor.channels_last = True
        engines['channels_last'] = (cl, build_optim_wrapper(cl, amp=args.amp))
        if device.type == 'cuda' and not args.amp:
            engines['AMP'] = (model, build_optim_wrapper(model, amp=True))
    banks = {byol_size: model.memory_bank}
    for s in sizes:
        banks[s] = NNMemoryBank(s, p['dim'], dtype=args.bank_dtype).to(device)
    timer = SearchTimer(device)
    for bank in list(banks.values()) + [m.memory_bank for e, (m, _) in engines.items() if e]:
        timer.wrap(bank)
    data = real_batches(args.data_root, p['img_size'], batch, num_batches=4)

    variants = [('BYOL-asym', byol_size, 1, 'torch', '')]
    variants += [('MSF', s, 5, search, '') for s in sizes for search in args.searches]
    variants += [(f'BYOL-asym, {e}', byol_size, 1, 'torch', e) for e in engines if e]
    current = [model, optim_wrapper]

    def use(variant):
        _, size, k, search, engine = variant
        current[:] = engines[engine]
        if engine:
            return
        bank = banks[size]
        bank.search_backend = search
        model.memory_bank = bank
        model.topk = k

    it = [0]

    def run_steps(n):
        for _ in range(n):
            train_step(current[0], data[it[0] % len(data)], current[1])
            it[0] += 1

    import time
    print(f'warm-up ({len(variants)} variants) ...', flush=True)
    for v in variants[:1] if args.quick else variants:
        use(v)
        run_steps(1)
    timer.pop()
    use(variants[0])
    byol_flops = step_flops(model, data[0], optim_wrapper)
    base = variants[0]
    times = {v: [] for v in variants}
    cpu_times = {v: [] for v in variants}
    search_times = {v: [] for v in variants}
    ratios = {v: [] for v in variants}
    cpu_ratios = {v: [] for v in variants}
    predicted = {v: [] for v in variants}  # 1 + (search - BYOL-asym search) / BYOL-asym step

    def measure(v):
        use(v)
        sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        run_steps(args.steps)
        sync(device)
        return ((time.perf_counter() - t0) / args.steps, (time.process_time() - c0) / args.steps,
                timer.pop() / args.steps)

    others = variants[1:]
    for r in range(args.repeats):
        shift = r % len(others)
        for j, v in enumerate(others[shift:] + others[:shift]):
            pair = (base, v) if (r + j) % 2 == 0 else (v, base)
            res = {x: measure(x) for x in pair}  # measured in pair order
            for x in pair:
                times[x].append(res[x][0])
                cpu_times[x].append(res[x][1])
                search_times[x].append(res[x][2])
            ratios[v].append(res[v][0] / res[base][0])
            cpu_ratios[v].append(res[v][1] / res[base][1])
            predicted[v].append(1.0 + (res[v][2] - res[base][2]) / res[base][0])
        print(f'round {r + 1}/{args.repeats}, ratios to the adjacent BYOL-asym step: ' +
              ', '.join(f'{v[0]}-{v[1]}-{v[3]} {ratios[v][-1]:.3f}' for v in others), flush=True)
        if device.type == 'cpu':
            print(f'  load average {os.getloadavg()[0]:.2f}', flush=True)
    ratios[base] = cpu_ratios[base] = predicted[base] = [1.0]

    rows, table = [], []
    for v in variants:
        name, size, k, search, _ = v
        step = median(times[v])
        srch = median(search_times[v])
        ratio = median(ratios[v])
        search_flops = 2.0 * batch * size * p['dim']
        goal = GOALS[device.type].get(size) if name == 'MSF' else None
        row = dict(variant=name, bank_size=size, k=k, search=search, step_ms=step * 1e3,
                   step_ms_all=[t * 1e3 for t in times[v]], ratio_to_byol=ratio,
                   ratios_all=ratios[v], cpu_ms=median(cpu_times[v]) * 1e3,
                   cpu_ratio_to_byol=median(cpu_ratios[v]), search_ms=srch * 1e3,
                   search_share=srch / step,
                   search_ms_all=[t * 1e3 for t in search_times[v]],
                   ratio_from_timed_search=median(predicted[v]),
                   search_flop_share=search_flops / (byol_flops + search_flops),
                   paper_search_share=PAPER_SEARCH_SHARE.get(size) if name == 'MSF' else None,
                   goal_ratio=goal, meets_goal=None if goal is None else bool(ratio <= goal))
        rows.append(row)
        table.append([name, size, k, search, row['step_ms'], ratio,
                      row['cpu_ratio_to_byol'] if device.type == 'cpu' else None,
                      row['ratio_from_timed_search'],
                      row['search_ms'],
                      f'{100 * row["search_share"]:.2f}%',
                      f'{100 * row["search_flop_share"]:.2f}%',
                      '-' if goal is None else f'<= {goal} ' + ('yes' if row['meets_goal']
                                                                else 'NO')])
    settings = dict(preset=p, bank_sizes=sizes, byol_bank_size=byol_size,
                    repeats=args.repeats, steps_per_round=args.steps,
                    bank_dtype=args.bank_dtype, channels_last=args.channels_last,
                    amp=args.amp, data_root=args.data_root,
                    byol_step_gflops=byol_flops / 1e9)
    arch = (f'ResNet-{p["depth"]} ({p["stem"]} stem), {p["img_size"]} px, batch {batch}, '
            f'{p["dim"]}-d embeddings, bank {args.bank_dtype}, {torch.get_num_threads()} threads'
            f', {device.type}')
    print_table(f'Step overhead of mean shift: {arch}; BYOL-asym step = '
                f'{byol_flops / 1e9:.0f} GFLOPs',
                ['variant', 'bank', 'k', 'search', 'step ms', 'ratio to BYOL-asym',
                 'CPU-time ratio', '1 + extra search / BYOL step', 'search ms', 'search share (time)', 'search share (FLOPs)',
                 'goal'], table)
    write_json(args.out, result_payload('step_overhead', args, device, settings, rows))
    return rows


if __name__ == '__main__':
    main()
