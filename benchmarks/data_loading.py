"""Images/s of the weak/strong (w/s) pipeline per data-loading worker against what a training
step consumes, i.e. how many workers keep the model fed.

Per worker: the pipeline runs in this process on one thread (as in one DataLoader worker), on
real images (``--data-root``, ImageFolder layout; default the bundled data/cifar10_mini), split
into decode, weak view, strong view and the full sample (decode + both views + packing). Then
real DataLoaders with 1..N workers (collation included) give the achieved rates. Consumption:
batch / step time of an MSF step (128K bank) of the device preset, measured here on
pre-collated batches. ``workers needed = ceil(consumption / per-worker rate)``.

    python -m benchmarks.data_loading [--data-root DIR] [--img-size 224] [--device cuda]
"""
import argparse
import math
import os.path as osp
import time

import torch

from benchmarks.common import (DEFAULT_DATA_ROOT, add_common_args, build_dataset,
                               build_model, build_optim_wrapper, median, msf_cfg, preset,
                               print_table, real_batches, result_payload, setup, sync,
                               train_step, weak_strong_pipeline, write_json)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_common_args(p, 'data_loading')
    p.add_argument('--data-root', default=DEFAULT_DATA_ROOT)
    p.add_argument('--img-size', type=int, default=None,
                   help='crop size (default: the step preset of the device)')
    p.add_argument('--images', type=int, default=512, help='images timed per measurement')
    p.add_argument('--workers', type=int, nargs='+', default=None,
                   help='DataLoader worker counts to measure (default 1 2; none with --quick)')
    p.add_argument('--loader-batch', type=int, default=None,
                   help='batch of the DataLoader measurement (default: the step preset\'s); '
                        'the rate per image hardly depends on it, a small one gives more '
                        'batches to time')
    p.add_argument('--loader-batches', type=int, default=None,
                   help='batches timed per worker count, after 2 x workers warm-up batches '
                        '(default: max(4 x workers, images / loader batch))')
    p.add_argument('--bank-size', type=int, default=128000)
    return p.parse_args(argv)


def rate(fn, n: int) -> float:
    """Calls per second of ``fn(i)`` over ``n`` calls."""
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - t0)


def main(argv=None):
    args = parse_args(argv)
    device = setup(args)
    p = preset(args)
    img = p['img_size']
    n = 48 if args.quick else args.images
    worker_counts = args.workers if args.workers is not None else ([] if args.quick else [1, 2])
    blur = img >= 64  # no blur at CIFAR sizes (configs/_base_/datasets/cifar10_mini_msf.py)

    from mmcv.transforms import Compose
    ds = build_dataset(args.data_root, weak_strong_pipeline(img, blur=blur))
    load = Compose([dict(type='LoadImageFromFile')])
    multi = weak_strong_pipeline(img, blur=blur)[1]['transforms']
    weak, strong = Compose(multi[0]), Compose(multi[1])
    jitter = Compose([dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4,
                           hue=0.1)])
    infos = [ds.get_data_info(i % len(ds)) for i in range(n)]
    decoded = [load(dict(info)) for info in infos]
    crops = [weak(dict(d)) for d in decoded]  # img_size x img_size inputs for the jitter alone

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a DataLoader worker runs one thread
    stages = {
        'decode (LoadImageFromFile)': rate(lambda i: load(dict(infos[i])), n),
        'weak view (crop, flip)': rate(lambda i: weak(dict(decoded[i])), n),
        f'strong view (crop, jitter, gray{", blur" if blur else ""}, flip)':
            rate(lambda i: strong(dict(decoded[i])), n),
        'of which colour jitter alone (always applied)': rate(lambda i: jitter(dict(crops[i])),
                                                              n),
        'full sample (decode + w + s + pack)': rate(lambda i: ds[i % len(ds)], n),
    }
    torch.set_num_threads(threads)
    per_worker = stages['full sample (decode + w + s + pack)']

    loader_rates = {}
    lbatch = args.loader_batch or p['batch']
    for w in worker_counts:
        from mmengine.dataset import default_collate
        timed = args.loader_batches or max(4 * w, n // lbatch)
        warm = 2 * w  # start-up and the batches the workers prefetch are not counted
        if (warm + timed) * lbatch > len(ds):
            raise SystemExit(f'{warm + timed} batches of {lbatch} need more than the '
                             f'{len(ds)} images of --data-root: lower --loader-batches or '
                             '--loader-batch.')
        loader = torch.utils.data.DataLoader(ds, batch_size=lbatch, num_workers=w,
                                             shuffle=True, collate_fn=default_collate,
                                             persistent_workers=False, drop_last=True)
        it = iter(loader)
        for _ in range(warm):
            next(it)
        got, t0 = 0, time.perf_counter()
        for _ in range(timed):
            got += len(next(it)['data_samples'])
        loader_rates[w] = got / (time.perf_counter() - t0)
        del it, loader

    # consumption of the training step (MSF, 128K bank) on pre-collated batches
    batch = p['batch']
    bank = max(batch, args.bank_size // batch * batch) if not args.quick else batch * 16
    model = build_model(msf_cfg(p, bank), device)
    optim_wrapper = build_optim_wrapper(model)
    data = real_batches(args.data_root, img, batch, num_batches=2)
    steps = 1 if args.quick else 3
    train_step(model, data[0], optim_wrapper)
    times = []
    for s in range(steps):
        sync(device)
        t0 = time.perf_counter()
        train_step(model, data[s % len(data)], optim_wrapper)
        sync(device)
        times.append(time.perf_counter() - t0)
    consumption = batch / median(times)
    needed = math.ceil(consumption / per_worker)

    rows = [dict(stage=k, images_per_s=v) for k, v in stages.items()]
    rows += [dict(stage=f'DataLoader, {w} worker(s), batch {lbatch}', images_per_s=v)
             for w, v in loader_rates.items()]
    rows.append(dict(stage=f'training step consumption (MSF, bank {bank:,}, batch {batch})',
                     images_per_s=consumption))
    table = [[r['stage'], r['images_per_s']] for r in rows]
    table.append(['workers needed to keep up (per-worker rate)', needed])
    settings = dict(data_root=args.data_root, img_size=img, images=n, blur=blur,
                    preset=p, bank_size=bank, step_ms=median(times) * 1e3)
    print_table(f'Data loading: w/s pipeline at {img} px on {osp.basename(args.data_root)} '
                f'vs. the {device.type} step (ResNet-{p["depth"]}, batch {batch})',
                ['stage', 'images/s'], table)
    write_json(args.out, result_payload(
        'data_loading', args, device, settings, rows,
        extra=dict(per_worker_images_per_s=per_worker, step_images_per_s=consumption,
                   workers_needed=needed, loader_images_per_s=loader_rates)))
    return rows


if __name__ == '__main__':
    main()
