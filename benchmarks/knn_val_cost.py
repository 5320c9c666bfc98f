"""What the online kNN validation costs, projected to the paper's ImageNet setting from rates
measured here: 1,281,167 training images, 50,000 val queries against a class-balanced 10%
memory set (128 images x 1,000 classes), validation every 10 epochs. Goal: one validation
<= 3% of one training epoch's time.

Measured side by side in one process:

* ``train``: seconds per training image of a full MSF step (EMA update, both views, 128K bank,
  search, backward) of the device preset, on real-image batches;
* ``embed``: seconds per image of what the validation does to each memory / query image: the
  eval-mode online backbone on one view, L2-normalised (``embed_batch``);
* ``search``: seconds per query x memory x dimension of faiss's exact inner-product search
  (``knn_classify``, k = 20), on the GPU with ``--device cuda`` where faiss-gpu is present;
* ``load``: seconds per image of one data-loading worker: the training pipeline (decode, weak
  and strong views) and the validation pipeline (decode, resize 256, centre crop 224), both on
  ImageNet-sized JPEGs (the bundled images upscaled to 500 x 375 with noise, ~ImageNet file size).

Projection (one validation vs one epoch): compute share = ((N_mem + N_q) embed + N_q N_mem D
search) / (N_train train); loading share = (N_mem + N_q) load_val / (N_train load_train). The
run is bound by one of the two and the validation by the same one, so the projected share is the
larger of the two; the amortised share divides it by the interval.

    python -m benchmarks.knn_val_cost [--device cuda] [--quick] [--repeats 5]
"""
import argparse
import os
import os.path as osp
import tempfile
import time

import numpy as np
import torch

from benchmarks.common import (DEFAULT_DATA_ROOT, add_common_args, build_model,
                               build_optim_wrapper, median, msf_cfg, preset, print_table,
                               real_batches, result_payload, setup, sync, train_step,
                               weak_strong_pipeline, write_json)

IMAGENET = dict(train=1281167, query=50000, classes=1000, memory_fraction=0.1, interval=10)
GOAL = 0.03


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_common_args(p, 'knn_val_cost')
    p.add_argument('--data-root', default=DEFAULT_DATA_ROOT)
    p.add_argument('--repeats', type=int, default=5, help='measurement rounds')
    p.add_argument('--bank-size', type=int, default=128000)
    p.add_argument('--load-images', type=int, default=64,
                   help='ImageNet-sized JPEGs timed per pipeline and round')
    p.add_argument('--feature-dim', type=int, default=None,
                   help='D of the projected search (default: the preset backbone, 2048 for '
                        'ResNet-50)')
    return p.parse_args(argv)


def imagenet_like_jpegs(data_root: str, out_dir: str, n: int, size=(500, 375)) -> str:
    """``n`` JPEGs of ImageNet's mean size in ``out_dir/train/<class>/``: the bundled images
    upscaled, with pixel noise so that they compress like photographs (~100 KB)."""
    import cv2
    rng = np.random.default_rng(0)
    src = osp.join(data_root, 'train')
    classes = sorted(os.listdir(src))[:2]
    files = [osp.join(src, c, f) for c in classes for f in sorted(os.listdir(osp.join(src, c)))]
    for i in range(n):
        cls = classes[i % len(classes)]
        img = cv2.resize(cv2.imread(files[i % len(files)]), size, interpolation=cv2.INTER_CUBIC)
        img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
        d = osp.join(out_dir, 'train', cls)
        os.makedirs(d, exist_ok=True)
        cv2.imwrite(osp.join(d, f'{i:04d}.jpg'), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return out_dir


def pipeline_seconds(root: str, pipeline, repeats: int) -> float:
    """Median over rounds of the seconds per image of ``pipeline`` (one thread, as a worker)."""
    from mmmsf.registry import DATASETS
    ds = DATASETS.build(dict(type='ImageFolder', data_root=root, data_prefix='train',
                             pipeline=pipeline))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a DataLoader worker runs torch on one thread
    try:
        ds[0]
        rounds = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for i in range(len(ds)):
                ds[i]
            rounds.append((time.perf_counter() - t0) / len(ds))
    finally:
        torch.set_num_threads(threads)
    return median(rounds)


def val_pipeline(crop: int):
    resize = int(round(crop * 256 / 224))
    return [dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(1 << 20, resize), keep_ratio=True),
            dict(type='CenterCrop', crop_size=crop), dict(type='PackInputs')]


def search_seconds(mem: int, queries: int, dim: int, device: torch.device,
                   repeats: int) -> float:
    """Median seconds per query x memory x dim of knn_classify's faiss search (k = 20)."""
    from mmmsf.evaluation.knn import knn_classify
    g = torch.Generator().manual_seed(0)
    mf = torch.nn.functional.normalize(torch.randn(mem, dim, generator=g), dim=1)
    qf = torch.nn.functional.normalize(torch.randn(queries, dim, generator=g), dim=1)
    ml = torch.randint(0, 10, (mem, ), generator=g)
    ql = torch.randint(0, 10, (queries, ), generator=g)
    gpu = 'auto' if device.type == 'cuda' else False
    knn_classify(mf, ml, qf[:16], ql[:16], ks=(1, 20), gpu=gpu)
    rounds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        knn_classify(mf, ml, qf, ql, ks=(1, 20), gpu=gpu)
        rounds.append((time.perf_counter() - t0) / (mem * queries * dim))
    return median(rounds)


def main(argv=None):
    args = parse_args(argv)
    device = setup(args)
    p = preset(args)
    batch = p['batch']
    repeats = 1 if args.quick else args.repeats
    bank = 512 if args.quick else args.bank_size // batch * batch
    data = real_batches(args.data_root, p['img_size'], batch, num_batches=2)

    # train vs embed, alternating in each round
    from mmmsf.evaluation.feature_extraction import embed_batch
    model = build_model(msf_cfg(p, bank), device)
    optim_wrapper = build_optim_wrapper(model)
    views = [dict(inputs=[d['inputs'][0]], data_samples=d['data_samples']) for d in data]
    train_step(model, data[0], optim_wrapper)
    model.eval()
    embed_batch(model, views[0])
    model.train()
    train_s, embed_s = [], []
    for r in range(repeats):
        for what in (('train', 'embed') if r % 2 == 0 else ('embed', 'train')):
            sync(device)
            t0 = time.perf_counter()
            if what == 'train':
                train_step(model, data[r % len(data)], optim_wrapper)
            else:
                model.eval()
                embed_batch(model, views[r % len(views)])
                model.train()
            sync(device)
            (train_s if what == 'train' else embed_s).append((time.perf_counter() - t0) / batch)
        print(f'round {r + 1}/{repeats}: train {train_s[-1] * 1e3:.2f} ms/img, embed '
              f'{embed_s[-1] * 1e3:.2f} ms/img', flush=True)
    train_img, embed_img = median(train_s), median(embed_s)

    dim = args.feature_dim or (2048 if p['depth'] >= 50 else p['feat'])
    if args.quick:
        s_mem, s_q = 512, 64
    else:
        s_mem, s_q = 32768, 2048
    search_unit = search_seconds(s_mem, s_q, dim, device, repeats)

    with tempfile.TemporaryDirectory() as tmp:
        root = imagenet_like_jpegs(args.data_root, tmp, 8 if args.quick else args.load_images)
        crop = 64 if args.quick else 224
        load_train = pipeline_seconds(root, weak_strong_pipeline(crop), repeats)
        load_val = pipeline_seconds(root, val_pipeline(crop), repeats)

    n_train, n_q = IMAGENET['train'], IMAGENET['query']
    rows = []
    for frac in (IMAGENET['memory_fraction'], 1.0):
        n_mem = int(round(frac * n_train / IMAGENET['classes'])) * IMAGENET['classes'] \
            if frac < 1 else n_train
        knn_compute = (n_mem + n_q) * embed_img + n_q * n_mem * dim * search_unit
        epoch_compute = n_train * train_img
        share_compute = knn_compute / epoch_compute
        share_load = (n_mem + n_q) * load_val / (n_train * load_train)
        share = max(share_compute, share_load)
        rows.append(dict(memory_fraction=frac, memory_images=n_mem, query_images=n_q,
                         embed_hours=(n_mem + n_q) * embed_img / 3600,
                         search_hours=n_q * n_mem * dim * search_unit / 3600,
                         epoch_hours=epoch_compute / 3600, share_compute=share_compute,
                         share_loading=share_load, share_per_validation=share,
                         share_amortised=share / IMAGENET['interval'],
                         goal=GOAL if frac < 1 else None,
                         meets_goal=bool(share <= GOAL) if frac < 1 else None))
    settings = dict(preset=p, bank_size=bank, feature_dim=dim, imagenet=IMAGENET,
                    rates=dict(train_s_per_img=train_img, embed_s_per_img=embed_img,
                               search_s_per_unit=search_unit, load_train_s_per_img=load_train,
                               load_val_s_per_img=load_val,
                               embed_over_train=embed_img / train_img,
                               load_val_over_train=load_val / load_train),
                    repeats=repeats)
    print_table(f'Measured rates ({device.type}, ResNet-{p["depth"]} at {p["img_size"]} px, '
                f'batch {batch}; loading on {crop} px crops of 500x375 JPEGs)',
                ['quantity', 'value'],
                [['train step, ms / image', train_img * 1e3],
                 ['kNN embedding, ms / image', embed_img * 1e3],
                 ['embedding / training time per image', embed_img / train_img],
                 [f'faiss search, ns / (query x memory x {dim} dims)', search_unit * 1e9],
                 ['train pipeline, ms / image / worker', load_train * 1e3],
                 ['val pipeline, ms / image / worker', load_val * 1e3]])
    print_table('Projected cost of one kNN validation at the ImageNet setting (1.28M training '
                'images, 50K queries, validation every 10 epochs)',
                ['memory set', 'images', 'share (compute)', 'share (loading)',
                 'share of an epoch', 'amortised (every 10)', f'goal <= {GOAL:.0%}'],
                [[f'{r["memory_fraction"]:.0%} class-balanced' if r['memory_fraction'] < 1
                  else 'all training images', r['memory_images'], f'{r["share_compute"]:.2%}',
                  f'{r["share_loading"]:.2%}', f'{r["share_per_validation"]:.2%}',
                  f'{r["share_amortised"]:.2%}',
                  '-' if r['goal'] is None else ('met' if r['meets_goal'] else 'MISSED')]
                 for r in rows])
    write_json(args.out, result_payload('knn_val_cost', args, device, settings, rows))


if __name__ == '__main__':
    main()
