"""The GPU half of the learning study inside the GPU self-check (``selfcheck.sh`` beside this
file): how many epochs the budget allows, and the trained backbones in parts small enough to
come back.

    python dev/gpu_selfcheck/study.py plan CONFIG --data-root D --seconds S --out plan.json
    python dev/gpu_selfcheck/study.py export WORK_DIR OUT_DIR  # float16 backbones, <= 16 MiB parts

``plan`` probes the config on this machine: the training step alone (a few real batches held
on the device, repeated) and the data loader alone (its workers decoding the images), each in
images/s. The slower of the two limits training; the epochs are the most that fit ``S`` seconds
of training, at least 1. The study itself is ``tools/cifar_benchmark.py`` (kNN against random
init and raw pixels, paired-bootstrap intervals), run by the self-check with these epochs.
"""
import argparse
import glob
import hashlib
import json
import math
import os
import os.path as osp
import sys
import time
from typing import Dict, Optional

MIB = 1 << 20
PART_BYTES = 16 * MIB - 4096  # what comes back: at most 16 MiB a file
OVERHEAD = 1.2  # epoch time margin: hooks, checkpoints, the online kNN validation


def _sync(device) -> None:
    import torch
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def probe(config: str, data_root: Optional[str], cfg_options: Optional[Dict], steps: int,
          loader_batches: int) -> Dict:
    """Images/s of the training step alone and of the data loader alone, for ``config``."""
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    from mmmsf.apis.config import load_config
    from mmmsf.registry import MODELS

    cfg = load_config(config, cfg_options, data_root)
    init_default_scope(cfg.get('default_scope', 'mmmsf'))
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    batch = cfg.train_dataloader.batch_size
    n_train, per_epoch = len(loader.dataset), len(loader)
    if per_epoch == 0:
        raise SystemExit(f'{config}: {n_train} training images make no batch of {batch}.')
    wanted = max(1, min(loader_batches, per_epoch))
    t0 = time.perf_counter()
    it = iter(loader)
    batches = [next(it) for _ in range(wanted)]  # workers started, decoding included
    loader_s = time.perf_counter() - t0
    del it
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.to(device)
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train()
    warm = min(2, steps)
    for i in range(warm):
        model.train_step(batches[i % len(batches)], optim)
    _sync(device)
    t0 = time.perf_counter()
    for i in range(steps):
        model.train_step(batches[i % len(batches)], optim)
    _sync(device)
    step_s = (time.perf_counter() - t0) / steps
    return dict(config=config, device=str(device), batch=batch, train_images=n_train,
                steps_per_epoch=per_epoch, step_ms=1000 * step_s,
                step_images_per_s=batch / step_s,
                loader_images_per_s=wanted * batch / loader_s,
                loader_batches_timed=wanted,
                loader_workers=cfg.train_dataloader.get('num_workers', 0))


def plan(config: str, data_root: Optional[str], cfg_options: Optional[Dict], seconds: float,
         max_epochs: Optional[int], steps: int, loader_batches: int) -> Dict:
    """The epochs that fit ``seconds`` of training, and which of step or loader limits it."""
    p = probe(config, data_root, cfg_options, steps, loader_batches)
    rate = min(p['step_images_per_s'], p['loader_images_per_s'])
    epoch_s = p['steps_per_epoch'] * p['batch'] / rate * OVERHEAD
    epochs = max(1, math.floor(seconds / epoch_s))
    if max_epochs:
        epochs = min(epochs, max_epochs)
    limited_by = 'GPU' if p['device'] == 'cuda' else 'CPU step'
    if p['loader_images_per_s'] < p['step_images_per_s']:
        limited_by = 'loader'
    return dict(probe=p, seconds=seconds, epoch_s_estimate=epoch_s, epochs=epochs,
                limited_by=limited_by, max_epochs=max_epochs)


# ---------------------------------------------------------------------------------- export
def export(work_dir: str, out_dir: str, max_parts: int = 3) -> Dict:
    """Every run's backbone of ``work_dir/results.json`` in float16, one file split into parts
    of at most 16 MiB (``cat backbones_fp16.pt.part* > backbones_fp16.pt``), or nothing and the
    reason when more than ``max_parts`` parts would be needed."""
    import torch

    from mmmsf.utils.checkpoint import load_state_dict
    with open(osp.join(work_dir, 'results.json')) as f:
        results = json.load(f)
    runs = {k: v for k, v in results.items() if not k.startswith('_')}
    if not runs:
        raise SystemExit(f'{work_dir}/results.json holds no finished run.')
    backbones = {}
    for key, run in runs.items():
        state = load_state_dict(run['checkpoint'])
        backbones[key] = {k: (v.half() if v.is_floating_point() else v)
                          for k, v in state.items() if k.startswith('backbone.')}
    os.makedirs(out_dir, exist_ok=True)
    for old in glob.glob(osp.join(out_dir, 'backbones_fp16.pt*')):
        os.remove(old)
    whole = osp.join(work_dir, 'backbones_fp16.pt')
    torch.save(dict(backbones=backbones, meta=dict(
        dtype='float16 (the kNN numbers are of the float32 weights)',
        accuracy={k: r['accuracy']['trained'] for k, r in runs.items()},
        epochs={k: r.get('steps') for k, r in runs.items()})), whole)
    size = osp.getsize(whole)
    parts = math.ceil(size / PART_BYTES)
    info = dict(runs=sorted(backbones), bytes=size, parts=[],
                sha256=hashlib.sha256(open(whole, 'rb').read()).hexdigest())
    if parts > max_parts:
        info['left_out'] = (f'{size / MIB:.1f} MiB would need {parts} parts of 16 MiB '
                            f'(at most {max_parts} of the 8 files that come back)')
        return info
    with open(whole, 'rb') as f:
        for i in range(parts):
            name = 'backbones_fp16.pt' if parts == 1 else f'backbones_fp16.pt.part{i}'
            with open(osp.join(out_dir, name), 'wb') as g:
                g.write(f.read(PART_BYTES))
            info['parts'].append(name)
    return info


def parse_args(argv=None) -> argparse.Namespace:
    from mmmsf.apis.config import DictAction
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = p.add_subparsers(dest='cmd', required=True)
    a = sub.add_parser('plan', help='probe step and loader; epochs that fit --seconds')
    a.add_argument('config')
    a.add_argument('--data-root')
    a.add_argument('--seconds', type=float, required=True, help='training seconds per config')
    a.add_argument('--max-epochs', type=int, default=None)
    a.add_argument('--steps', type=int, default=10, help='timed training steps')
    a.add_argument('--loader-batches', type=int, default=30, help='timed loader batches')
    a.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE')
    a.add_argument('--out', required=True)
    e = sub.add_parser('export', help='float16 backbones of WORK_DIR\'s runs into OUT_DIR')
    e.add_argument('work_dir')
    e.add_argument('out_dir')
    e.add_argument('--max-parts', type=int, default=3)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.cmd == 'plan':
        import torch
        torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS') or os.cpu_count() or 1))
        res = plan(args.config, args.data_root, args.cfg_options, args.seconds,
                   args.max_epochs, args.steps, args.loader_batches)
    else:
        res = export(args.work_dir, args.out_dir, args.max_parts)
        res_path = osp.join(args.work_dir, 'export.json')
        with open(res_path, 'w') as f:
            json.dump(res, f, indent=1)
    if args.cmd == 'plan':
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(res, f, indent=1)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
