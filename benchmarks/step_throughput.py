"""Images/s and memory of one MSF training step in float32 and with AMP, each with and without
``channels_last`` (on a GPU: ResNet-50, 224 px, 128K bank, the paper's setting).

The formats are timed side by side in one process: one model per format, all built from the
same initial weights, trained on the same pre-collated real-image batches; each round times
``--steps`` steps of every format, in rotating order, and the median over the rounds is
reported. Memory per step: the peak of the CUDA caching allocator during one step above what
was allocated before it (weights, optimiser state and bank), and the whole peak.

    python -m benchmarks.step_throughput [--device cuda] [--quick] [--formats fp32 amp ...]
"""
import argparse
import copy
import time

import torch

from benchmarks.common import (DEFAULT_DATA_ROOT, add_common_args, build_model,
                               build_optim_wrapper, median, msf_cfg, preset, print_table,
                               real_batches, result_payload, setup, sync, train_step,
                               write_json)

FORMATS = ('fp32', 'fp32+channels_last', 'amp', 'amp+channels_last')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_common_args(p, 'step_throughput')
    p.add_argument('--formats', nargs='+', default=None, choices=FORMATS,
                   help='default: all four on CUDA, the two float32 ones on the CPU')
    p.add_argument('--amp-dtype', default='float16', choices=['float16', 'bfloat16'])
    p.add_argument('--bank-size', type=int, default=128000)
    p.add_argument('--batch', type=int, default=None, help='override the preset batch')
    p.add_argument('--img-size', type=int, default=None, help='override the preset size')
    p.add_argument('--repeats', type=int, default=5, help='measurement rounds')
    p.add_argument('--steps', type=int, default=3, help='steps per format and round')
    p.add_argument('--data-root', default=DEFAULT_DATA_ROOT)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    formats = args.formats or (list(FORMATS) if args.device == 'cuda' else list(FORMATS[:2]))
    if args.device != 'cuda' and any(f.startswith('amp') for f in formats):
        raise SystemExit('--formats amp*: AMP needs CUDA (mmengine\'s AmpOptimWrapper is '
                         'CUDA-only); on the CPU use fp32 and fp32+channels_last.')
    device = setup(args)
    p = preset(args)
    batch = p['batch']
    repeats, steps = (1, 1) if args.quick else (args.repeats, args.steps)
    bank = 16 * batch if args.quick else args.bank_size // batch * batch
    if bank < batch:
        raise SystemExit(f'--bank-size {args.bank_size} is smaller than the batch {batch}.')

    base = build_model(msf_cfg(p, bank), device)
    engines = {}
    for f in formats:
        model = copy.deepcopy(base)
        if f.endswith('channels_last'):
            model = model.to(memory_format=torch.channels_last)
            model.data_preprocessor.channels_last = True
        wrapper = build_optim_wrapper(model, amp=f.startswith('amp'), amp_dtype=args.amp_dtype)
        engines[f] = (model, wrapper)
    del base
    data = real_batches(args.data_root, p['img_size'], batch, num_batches=2)
    it = [0]

    def run(f, n):
        model, wrapper = engines[f]
        for _ in range(n):
            train_step(model, data[it[0] % len(data)], wrapper)
            it[0] += 1

    memory = {}
    for f in formats:  # warm-up (cudnn autotuning), then one step with the peak recorded
        run(f, 1)
        if device.type == 'cuda':
            sync(device)
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            run(f, 1)
            sync(device)
            peak = torch.cuda.max_memory_allocated(device)
            memory[f] = dict(held_mib=before / 2**20, step_peak_above_held_mib=(peak - before)
                             / 2**20, peak_mib=peak / 2**20)
    rates = {f: [] for f in formats}
    for r in range(repeats):
        order = formats[r % len(formats):] + formats[:r % len(formats)]
        for f in order:
            sync(device)
            t0 = time.perf_counter()
            run(f, steps)
            sync(device)
            rates[f].append(batch * steps / (time.perf_counter() - t0))
        print(f'round {r + 1}/{repeats}: ' +
              ', '.join(f'{f} {rates[f][-1]:.1f} img/s' for f in formats), flush=True)

    ref = median(rates[formats[0]])
    rows, table = [], []
    for f in formats:
        ips = median(rates[f])
        row = dict(format=f, amp_dtype=args.amp_dtype if f.startswith('amp') else None,
                   images_per_s=ips, images_per_s_all=rates[f], step_ms=batch / ips * 1e3,
                   speedup_vs_first=ips / ref, **memory.get(f, {}))
        rows.append(row)
        table.append([f, ips, row['step_ms'], row['speedup_vs_first'],
                      row.get('step_peak_above_held_mib'), row.get('peak_mib')])
    settings = dict(preset=p, bank_size=bank, repeats=repeats, steps_per_round=steps,
                    formats=formats, amp_dtype=args.amp_dtype, data_root=args.data_root)
    print_table(f'MSF step throughput: ResNet-{p["depth"]}, {p["img_size"]} px, batch {batch}, '
                f'bank {bank:,}, {device.type}',
                ['format', 'images/s', 'step ms', f'vs. {formats[0]}',
                 'step peak above held MiB', 'peak MiB'], table)
    write_json(args.out, result_payload('step_throughput', args, device, settings, rows))
    return rows


if __name__ == '__main__':
    main()
