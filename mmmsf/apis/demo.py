"""The README's demo: pre-train MSF on the bundled images, then kNN against two baselines.

Three feature sets go through one kNN protocol (unit-norm features, exact search, unweighted
vote) on the same train/test images: the randomly initialised backbone, the raw pixels
(normalised and flattened) and the trained backbone. The trained backbone's gain over each
baseline comes with a 95% paired-bootstrap interval over the test images
(:func:`mmmsf.evaluation.paired_bootstrap`). ``run_demo_seeds`` repeats the demo over seeds
and summarises the spread (the README's table).
"""
import glob
import json
import os
import os.path as osp
import statistics
import time
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mmmsf.evaluation import extract_features, knn_correct, paired_bootstrap, raw_pixel_features
from mmmsf.visualization.training_curves import plot_training_curves

from .config import load_config
from .evaluate import build_model
from .train import prepare_train_cfg, train

DEMO_CONFIG = 'configs/demo/msf_r18_cifar10mini_ws.py'
BASELINES = ('random', 'pixels')
NAMES = {'random': 'random init', 'pixels': 'raw pixels', 'trained': 'MSF, trained'}


def _say(msg: str) -> None:
    print_log(f'[demo] {msg}', logger='current')


def _knn(cfg: Config, feats_train, feats_test) -> Dict[str, torch.Tensor]:
    knn_cfg = dict(cfg.get('knn_cfg', {}))
    return knn_correct(feats_train[0], feats_train[1], feats_test[0], feats_test[1],
                       ks=knn_cfg.get('ks', (1, 20)), weighted=knn_cfg.get('weighted', False),
                       temperature=knn_cfg.get('temperature', 0.07))


def _device() -> Optional[torch.device]:
    """Embed on the GPU when there is one (full-width backbones, 2 x 22,000 images)."""
    return torch.device('cuda') if torch.cuda.is_available() else None


def _backbone_correct(cfg: Config, checkpoint: Optional[str], seed: int, loaders):
    model = build_model(cfg, checkpoint, seed=seed)
    return _knn(cfg, *(extract_features(model, loader, _device()) for loader in loaders))


def run_demo(config: str = DEMO_CONFIG, work_dir: str = 'work_dirs/demo_msf',
             data_root: Optional[str] = None, cfg_options: Optional[dict] = None,
             seed: Optional[int] = None, num_bootstrap: int = 10000,
             resume: Optional[str] = None) -> Dict:
    """Train ``config`` and score random init, raw pixels and the trained backbone with kNN.

    Returns ``accuracy[name][metric]`` (%), ``gain[baseline][metric]`` (bootstrap dicts),
    ``correct[name][metric]`` (per-test-image bools), the training losses, the paths of the
    checkpoint, log folder and curve image (None when not drawn) and the timings. ``resume``
    is :func:`~mmmsf.apis.train.prepare_train_cfg`'s (``'if-any'``: continue an interrupted run).
    """
    cfg: Config = load_config(config, cfg_options, data_root)
    if seed is not None:
        cfg.randomness = dict(cfg.get('randomness', {}), seed=seed)
    seed = cfg.get('randomness', {}).get('seed', 0)
    cfg = prepare_train_cfg(cfg, work_dir=work_dir, resume=resume)
    init_default_scope(cfg.get('default_scope', 'mmmsf'))
    loaders = [Runner.build_dataloader(cfg.knn_train_dataloader),
               Runner.build_dataloader(cfg.knn_test_dataloader)]
    n_train, n_test = (len(loader.dataset) for loader in loaders)
    epochs = cfg.train_cfg.max_epochs
    per_epoch = len(Runner.build_dataloader(cfg.train_dataloader))
    steps = epochs * per_epoch
    t0 = time.time()
    _say(f'1/2 pre-training: {epochs} epochs x {per_epoch} steps = {steps} steps of '
         f'{cfg.train_dataloader.batch_size} images (progress and ETA every '
         f"{cfg.default_hooks.logger.interval} steps)")
    runner = train(cfg)
    t1 = time.time()
    ckpt = osp.join(cfg.work_dir, f'epoch_{runner.max_epochs}.pth')
    _say(f'2/2 kNN ({n_train} train / {n_test} test images) of the trained backbone, the '
         'randomly initialised one and the raw pixels (normalised, flattened)')
    correct = dict(trained=_backbone_correct(cfg, ckpt, seed, loaders),
                   random=_backbone_correct(cfg, None, seed, loaders))
    pre = build_model(cfg, None, seed=seed).data_preprocessor
    correct['pixels'] = _knn(cfg, *(raw_pixel_features(pre, loader, _device())
                                    for loader in loaders))
    t2 = time.time()
    curves = osp.join(cfg.work_dir, 'curves.png')
    plot_training_curves([cfg.work_dir], curves, [osp.basename(osp.normpath(cfg.work_dir))])
    accuracy = {name: {m: 100.0 * float(c.double().mean()) for m, c in res.items()}
                for name, res in correct.items()}
    gain = {b: {m: paired_bootstrap(correct['trained'][m], correct[b][m],
                                    num_samples=num_bootstrap, seed=seed)
                for m in correct['trained']} for b in BASELINES}
    return dict(
        seed=seed, accuracy=accuracy, gain=gain, correct=correct,
        losses=_losses(runner), num_images=dict(train=n_train, test=n_test), steps=steps,
        batch_size=cfg.train_dataloader.batch_size,
        checkpoint=ckpt, log_dir=runner.log_dir, curves=curves,
        seconds=dict(train=t1 - t0, knn=t2 - t1, total=t2 - t0))


def _losses(runner) -> List[float]:
    """The logged training losses (one per logger interval), from the run's scalar file."""
    path = osp.join(runner.log_dir, 'vis_data', 'scalars.json')
    losses = []
    if osp.isfile(path):
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if 'loss' in rec:
                    losses.append(float(rec['loss']))
    return losses


def find_curve_image(work_dir: str) -> Optional[str]:
    """The training-curve image of a run, if one was drawn (newest ``*curves*.png``)."""
    found = sorted(glob.glob(osp.join(work_dir, '**', '*curve*.png'), recursive=True),
                   key=osp.getmtime)
    return found[-1] if found else None


def _interval(g: Dict) -> str:
    return f"{g['gain']:+5.1f} [{g['low']:+.1f}, {g['high']:+.1f}]"


def beats_baselines(result: Dict) -> bool:
    """True when every gain's interval lies above zero (both baselines, every metric)."""
    return all(g['low'] > 0 for per in result['gain'].values() for g in per.values())


VERDICT_LINE = ('Five minutes decide little: at this budget k = 1 (BYOL-asym) scores higher than '
                'k = 5 (docs/demo_probes.md); mean shift against raw pixels after a CPU hour: '
                'docs/benchmarks/cifar_hour.md (python tools/cifar_benchmark.py).')
NEXT_COMMANDS = """\
  CMSF (k-means constraint):  python tools/train.py configs/demo/cmsf_km_r18_cifar10mini.py
  linear probe:               python tools/linear_eval.py \\
                                configs/benchmarks/linear/linear_r18_cifar10mini_demo.py {ckpt} \\
                                --precompute-features
  spread over seeds:          bash tools/demo.sh --seeds 0 1 2 3 4
  detection smoke run:        bash tools/setup_env.sh --full   # mmdet + mmcv ops, once
                              python tools/data/make_tiny_voc.py
                              python tools/train_detection.py \\
                                configs/benchmarks/detection/faster-rcnn_r18-c4_tiny-voc_cpu.py \\
                                --scratch"""


def format_demo(result: Dict) -> str:
    """The summary block printed at the end of the demo."""
    acc, metrics = result['accuracy'], list(result['accuracy']['trained'])
    n = result['num_images']
    lines = ['', '=' * 26 + ' MSF demo: summary ' + '=' * 26,
             f"kNN top-1 (%), frozen features, {n['train']:,} train / {n['test']:,} test images "
             f"(seed {result['seed']}):",
             f"  {'features':<16}" + ''.join(f'{m:>8}' for m in metrics)]
    for name in ('random', 'pixels', 'trained'):
        lines.append(f'  {NAMES[name]:<16}' + ''.join(f'{acc[name][m]:8.1f}' for m in metrics))
    g0 = result['gain']['random'][metrics[0]]
    lines.append(f"Gain of the trained backbone, points [{100 * g0['confidence']:.0f}% paired "
                 f"bootstrap over the test images, {g0['num_samples']:,} resamples]:")
    for b in BASELINES:
        lines.append(f'  over {NAMES[b]:<12}' + '   '.join(
            f'{m} {_interval(result["gain"][b][m])}' for m in metrics))
    weak = [f'{NAMES[b]} {m}' for b in BASELINES for m in metrics
            if result['gain'][b][m]['low'] <= 0]
    lines.append('  -> beats both baselines on every metric (all intervals above 0)' if not weak
                 else '  -> NOT beyond doubt over: ' + ', '.join(weak) + ' (interval reaches 0)')
    lines.append(VERDICT_LINE)
    s = result['seconds']
    lines += [f"Time: train {s['train']:.0f} s ({result['steps']} steps, "
              f"{s['train'] / max(result['steps'], 1):.2f} s/step), kNN "
              f"{s['knn']:.0f} s, total {s['total']:.0f} s",
              f"Checkpoint: {result['checkpoint']}",
              f"Logs:       {result['log_dir']} (text log, vis_data/scalars.json)",
              # the curve image is drawn by the online-kNN curves when they are on
              f"Curves:     {result['curves'] or '(no curve image in this run)'}",
              'Next:', NEXT_COMMANDS.format(ckpt=result['checkpoint']), '=' * 71]
    return '\n'.join(lines)


def seed_spread(values: Sequence[float]) -> Dict[str, float]:
    """Mean, sample standard deviation, min, max and count of one number over seeds."""
    return dict(mean=statistics.fmean(values),
                std=statistics.stdev(values) if len(values) > 1 else 0.0,
                min=min(values), max=max(values), n=len(values))


def run_demo_seeds(seeds: Sequence[int], config: str = DEMO_CONFIG,
                   work_dir: str = 'work_dirs/demo_msf', data_root: Optional[str] = None,
                   cfg_options: Optional[dict] = None, machine: str = '') -> Dict:
    """The demo once per seed (in ``work_dir/seed<s>``); spread of every number over seeds.

    Writes ``work_dir/seeds.json`` (per-seed accuracies and gains, and the spread).
    """
    runs = []
    for s in seeds:
        _say(f'=== seed {s} ({len(runs) + 1}/{len(seeds)}) ===')
        res = run_demo(config, osp.join(work_dir, f'seed{s}'), data_root, cfg_options, seed=s)
        print(format_demo(res))
        res.pop('correct')
        runs.append(res)
    metrics = list(runs[0]['accuracy']['trained'])
    spread = {name: {m: seed_spread([r['accuracy'][name][m] for r in runs]) for m in metrics}
              for name in ('random', 'pixels', 'trained')}
    gains = {b: {m: seed_spread([r['gain'][b][m]['gain'] for r in runs]) for m in metrics}
             for b in BASELINES}
    out = dict(config=config, machine=machine, seeds=list(seeds), spread=spread,
               gain_spread=gains, runs=runs,
               beats_in_every_seed=all(beats_baselines(r) for r in runs))
    os.makedirs(work_dir, exist_ok=True)
    with open(osp.join(work_dir, 'seeds.json'), 'w') as f:
        json.dump(out, f, indent=1)
    return out


def format_seeds(out: Dict) -> str:
    """A markdown table of mean ± std (min-max) over seeds, as in the README."""
    runs, spread = out['runs'], out['spread']
    metrics = list(spread['trained'])

    def cell(s):
        return f"{s['mean']:.1f} ± {s['std']:.1f} ({s['min']:.1f}-{s['max']:.1f})"

    lines = [f"{len(runs)} seeds ({', '.join(map(str, out['seeds']))})"
             + (f" on {out['machine']}" if out['machine'] else '') + ':', '',
             '| features | ' + ' | '.join(metrics) + ' |', '|---|' + '---|' * len(metrics)]
    for name in ('random', 'pixels', 'trained'):
        lines.append(f'| {NAMES[name]} | ' + ' | '.join(cell(spread[name][m]) for m in metrics)
                     + ' |')
    for b in BASELINES:
        lines.append(f'| gain over {NAMES[b]} | ' + ' | '.join(
            cell(out['gain_spread'][b][m]) for m in metrics) + ' |')
    worst = {b: {m: min(r['gain'][b][m]['low'] for r in runs) for m in metrics}
             for b in BASELINES}
    lines += ['', 'Lowest 95% interval bound of any seed: ' + '; '.join(
        f"over {NAMES[b]} " + ', '.join(f'{m} {worst[b][m]:+.1f}' for m in metrics)
        for b in BASELINES)]
    return '\n'.join(lines)
