"""What CMSF adds to MSF: the epoch-end k-means of CMSF-KM as a share of the epoch (goal <= 3%)
and the step cost of CMSF-2Q's second bank, as functions of the dataset size.

* Step times of MSF, CMSF-KM, CMSF-2Q with the paper's third view and CMSF-2Q with the released
  code's previous-visit embeddings (embedding cache of N images, N = the dataset sizes) are
  measured side by side in one process (same backbone, batch, real-image data, threads; bank
  of 128K as in the CMSF paper), interleaved rounds, medians; ratios are to the MSF step.
* k-means: ``mmmsf.utils.knn_search.faiss_kmeans_assign``, which
  :class:`~mmmsf.engine.hooks.KMeansClusterHook` runs (faiss k-means, 20 iterations), on N
  cached embeddings with N / 25.6 clusters (ImageNet: 1,281,167 images, 50,000 clusters). The embeddings are random unit vectors: k-means time
  depends on N, clusters, D and iterations, not on the values. Epoch time = ceil(N / batch) x
  the CMSF-KM step. Sizes this machine cannot run are extrapolated from the measured rates
  (k-means FLOPs 2 N C D iters / measured k-means GFLOP/s), marked as such.

    python -m benchmarks.cmsf_extras [--device cuda] [--quick]
"""
import argparse
import math
import time

import numpy as np
import torch

from benchmarks.common import (DEFAULT_DATA_ROOT, add_common_args, build_model,
                               build_optim_wrapper, median, msf_cfg, preset, print_table,
                               real_batches, result_payload, setup, sync, train_step,
                               write_json)

IMAGENET = 1281167
IMAGES_PER_CLUSTER = IMAGENET / 50000  # CMSF-KM on ImageNet: 50,000 clusters
GOAL_KMEANS_SHARE = 0.03


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_common_args(p, 'cmsf_extras')
    p.add_argument('--bank-size', type=int, default=128000)
    p.add_argument('--dataset-sizes', type=int, nargs='+', default=None,
                   help='N for k-means (measured) and the previous-visit cache')
    p.add_argument('--extrapolate', type=int, nargs='+', default=[IMAGENET],
                   help='dataset sizes whose k-means share is extrapolated')
    p.add_argument('--niter', type=int, default=20)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--data-root', default=DEFAULT_DATA_ROOT)
    return p.parse_args(argv)


def cmsf_variants(p, bank, dataset_sizes):
    """name -> (model config, views, dataset size of the embedding cache or None)."""
    base = msf_cfg(p, bank)
    out = {'MSF': (base, 2, None)}
    km = dict(base, type='CMSF', constrained_selector=dict(type='KMeansSelector'),
              embedding_cache=dict(type='EmbeddingCache'), rank_stats=False)
    out['CMSF-KM'] = (km, 2, max(dataset_sizes))
    out['CMSF-2Q third view'] = (dict(
        base, type='CMSF', extra_view=2, rank_stats=False,
        constrained_selector=dict(type='TwoQueueSelector', second_query='third_view')), 3, None)
    for n in dataset_sizes:
        out[f'CMSF-2Q previous visit, N={n:,}'] = (dict(
            base, type='CMSF', rank_stats=False, embedding_cache=dict(type='EmbeddingCache'),
            constrained_selector=dict(type='TwoQueueSelector', second_query='previous_visit')),
            2, n)
    return out


def main(argv=None):
    args = parse_args(argv)
    device = setup(args)
    from mmmsf.utils.knn_search import faiss_kmeans_assign
    p = preset(args)
    batch = p['batch']
    bank = batch * 32 if args.quick else args.bank_size // batch * batch
    sizes = args.dataset_sizes or ([600, 1200] if args.quick else [3000, 20000, 50000])
    repeats = 1 if args.quick else args.repeats
    niter = 2 if args.quick else args.niter

    # ------------------------------------------------------------------ step times
    data = {v: real_batches(args.data_root, p['img_size'], batch, num_batches=2, views=v)
            for v in (2, 3)}
    models = {}
    for name, (cfg, views, n) in cmsf_variants(p, bank, sizes).items():
        model = build_model(cfg, device)
        if n is not None:
            model.embedding_cache.allocate(n)
        if name == 'CMSF-KM':  # a clustering is installed, as after the first epoch
            ids = torch.randint(0, max(1, round(n / IMAGES_PER_CLUSTER)), (n, ))
            model.constrained_selector.set_cluster_ids(ids)
        models[name] = (model, build_optim_wrapper(model), data[views])
    for model, ow, d in models.values():  # warm-up
        train_step(model, d[0], ow)
    times = {name: [] for name in models}
    for r in range(repeats):
        for name, (model, ow, d) in models.items():
            sync(device)
            t0 = time.perf_counter()
            train_step(model, d[r % len(d)], ow)
            sync(device)
            times[name].append(time.perf_counter() - t0)
        print(f'round {r + 1}/{repeats}: ' + ', '.join(
            f'{k} {v[-1] * 1e3:.0f} ms' for k, v in times.items()), flush=True)
    msf_ms = median(times['MSF']) * 1e3
    step_rows, step_table = [], []
    for name, (model, _, _) in models.items():
        ms = median(times[name]) * 1e3
        ratios = [t / m for t, m in zip(times[name], times['MSF'])]
        sel = getattr(model, 'constrained_selector', None)
        second = sum(b.numel() * b.element_size() for n_, b in sel.named_buffers()
                     if n_.startswith('second')) if sel is not None else 0
        cache = model.embedding_cache.nbytes if getattr(model, 'embedding_cache', None) \
            is not None else 0
        row = dict(variant=name, bank_size=bank, step_ms=ms, ratio_to_msf=median(ratios),
                   second_bank_bytes=second, embedding_cache_bytes=cache,
                   cache_images=models[name][0].embedding_cache.num_images if cache else 0)
        step_rows.append(row)
        step_table.append([name, ms, row['ratio_to_msf'], second / 2**20, cache / 2**20])
    km_step_s = median(times['CMSF-KM'])
    del models

    # ------------------------------------------------------------------ k-means share
    km_rows, km_table = [], []
    rates = []
    for n in sizes:
        clusters = max(1, round(n / IMAGES_PER_CLUSTER))
        x = np.random.default_rng(0).standard_normal((n, p['dim']), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        t0 = time.perf_counter()
        faiss_kmeans_assign(x, clusters, niter=niter, seed=0,
                            gpu='auto' if device.type == 'cuda' else False)
        km_s = time.perf_counter() - t0
        flops = 2.0 * n * clusters * p['dim'] * (niter + 1)  # iterations + final assignment
        rates.append(flops / km_s)
        epoch_s = math.ceil(n / batch) * km_step_s
        share = km_s / (epoch_s + km_s)
        km_rows.append(dict(images=n, clusters=clusters, kmeans_s=km_s, epoch_s=epoch_s,
                            share=share, measured=True,
                            meets_goal=bool(share <= GOAL_KMEANS_SHARE)))
        km_table.append([n, clusters, km_s, epoch_s, f'{100 * share:.2f}%', 'measured'])
    rate = rates[-1]
    for n in ([] if args.quick else args.extrapolate):
        clusters = max(1, round(n / IMAGES_PER_CLUSTER))
        km_s = 2.0 * n * clusters * p['dim'] * (niter + 1) / rate
        epoch_s = math.ceil(n / batch) * km_step_s
        share = km_s / (epoch_s + km_s)
        km_rows.append(dict(images=n, clusters=clusters, kmeans_s=km_s, epoch_s=epoch_s,
                            share=share, measured=False,
                            meets_goal=bool(share <= GOAL_KMEANS_SHARE)))
        km_table.append([n, clusters, km_s, epoch_s, f'{100 * share:.2f}%',
                         f'extrapolated ({rate / 1e9:.1f} GFLOP/s k-means)'])

    settings = dict(preset=p, bank_size=bank, dataset_sizes=sizes, niter=niter,
                    repeats=repeats, images_per_cluster=IMAGES_PER_CLUSTER,
                    msf_step_ms=msf_ms, cmsf_km_step_ms=km_step_s * 1e3)
    arch = (f'ResNet-{p["depth"]}, {p["img_size"]} px, batch {batch}, {p["dim"]}-d, '
            f'bank {bank:,}, {device.type}, {torch.get_num_threads()} threads')
    print_table(f'CMSF step cost vs. MSF ({arch})',
                ['variant', 'step ms', 'ratio to MSF', "second bank M' MiB",
                 'embedding cache MiB'], step_table)
    print_table(f'CMSF-KM: epoch-end k-means ({niter} iterations) as a share of the epoch '
                f'(goal <= {GOAL_KMEANS_SHARE:.0%})',
                ['images N', 'clusters', 'k-means s', 'epoch s', 'share', 'how'], km_table)
    write_json(args.out, result_payload('cmsf_extras', args, device, settings, step_rows,
                                        extra=dict(kmeans=km_rows)))
    return step_rows, km_rows


if __name__ == '__main__':
    main()
