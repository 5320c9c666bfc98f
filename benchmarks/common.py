"""Shared parts of the benchmark scripts: arguments, machine description, timing, tables,
JSON output, and the MSF model / real-image batches the step benchmarks train on.

Every script prints a markdown table and writes a JSON file (``--out``, default
``work_dirs/benchmarks/<name>.json``) with the machine, the settings and the measurements.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch

from mmmsf.utils.collect_env import collect_env

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_DATA_ROOT = osp.join(ROOT, 'data', 'cifar10_mini')

# The paper's bank sizes (Table 1: 128K and 1M) plus a small one; all are multiples of the
# global batch of both presets (32 on the CPU, 256 on a GPU).
BANK_SIZES = (16384, 128000, 1024000)

# Presets of the step benchmarks. ``cuda`` is the paper's setting (ResNet-50, 224 px, batch 256,
# 512-d embeddings). A 2-core CPU cannot repeat ResNet-50/224 steps next to a 1M bank, so
# ``cpu`` uses ResNet-18 at 160 px, batch 32, 128-d embeddings (the reference rule for
# ResNet-18: projection 512-1024-128): its forward is 1.85 GFLOPs (multiply+add = 2) per image,
# i.e. 14.5 MFLOPs per embedding dimension against ResNet-50/224/512-d's 16.0, so the search
# costs the same share of the step's FLOPs as in the paper (10% more, if anything).
PRESETS = {
    'cuda': dict(depth=50, stem='imagenet', img_size=224, batch=256, dim=512, feat=2048,
                 hidden=4096),
    'cpu': dict(depth=18, stem='imagenet', img_size=160, batch=32, dim=128, feat=512,
                hidden=1024),
}
QUICK = dict(depth=18, stem='small', img_size=16, batch=16, dim=32, feat=64, hidden=64,
             base_channels=8)


def add_common_args(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    parser.add_argument('--quick', action='store_true',
                        help='tiny sizes that finish in seconds (used by the test suite)')
    parser.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    parser.add_argument('--threads', type=int, default=None,
                        help='torch/faiss CPU threads (default: all cores)')
    parser.add_argument('--out', default=osp.join(ROOT, 'work_dirs', 'benchmarks', f'{name}.json'),
                        help='where to write the JSON results')
    return parser


def setup(args) -> torch.device:
    """Set threads and the registry scope; check the device; return it."""
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    init_default_scope('mmmsf')
    if MMLogger.check_instance_created('mmmsf_benchmarks'):  # no init_weights dump
        MMLogger.get_instance('mmmsf_benchmarks')
    else:
        MMLogger.get_instance('mmmsf_benchmarks', log_level='WARNING')
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: no CUDA device is visible to torch; use --device cpu.')
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    try:
        import faiss
        faiss.omp_set_num_threads(threads)
    except ImportError:
        pass
    if args.device == 'cuda':
        torch.backends.cudnn.benchmark = True
    return torch.device(args.device)


def usable_searches(device: torch.device, searches: Sequence[str]) -> List[str]:
    """``searches`` without 'faiss' where it cannot search this device's bank in place (a CUDA
    bank without faiss-gpu would silently fall back to the torch search and be mislabelled)."""
    if device.type != 'cuda' or 'faiss' not in searches:
        return list(searches)
    from mmmsf.utils.knn_search import gpu_search_available
    if gpu_search_available():
        return list(searches)
    print('faiss-gpu is not installed: the faiss search variants are left out on the GPU.',
          flush=True)
    return [s for s in searches if s != 'faiss']


def machine_info(device: torch.device) -> Dict:
    """What the numbers were measured on: ``mmmsf.utils.collect_env`` (CPU model and cores,
    versions, GPUs) plus this run's torch threads, load average and device."""
    info = collect_env()
    info.update(torch_threads=torch.get_num_threads(),
                load_avg_1_5_15=[round(x, 2) for x in os.getloadavg()], device=str(device))
    if device.type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
    return info


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of one call, device work included."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def fmt(x, digits: int = 3) -> str:
    if x is None:
        return '-'
    if isinstance(x, float):
        return f'{x:.{digits}f}' if abs(x) < 1e4 else f'{x:,.0f}'
    if isinstance(x, int):
        return f'{x:,}'
    return str(x)


def print_table(title: str, columns: List[str], rows: List[List]) -> str:
    """Print (and return) a markdown table."""
    lines = [f'\n{title}\n', '| ' + ' | '.join(columns) + ' |',
             '|' + '|'.join('---' for _ in columns) + '|']
    lines += ['| ' + ' | '.join(fmt(v) for v in row) + ' |' for row in rows]
    text = '\n'.join(lines)
    print(text, flush=True)
    return text


def write_json(path: str, payload: Dict) -> None:
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(payload, f, indent=2)
    print(f'\nresults written to {path}')


def preset(args) -> Dict:
    """The model/batch preset for the device (``QUICK`` with ``--quick``), with the script's
    ``--batch`` / ``--img-size`` overrides where it has them and they are given."""
    p = dict(QUICK if args.quick else PRESETS[args.device])
    for key in ('batch', 'img_size'):
        if getattr(args, key, None):
            p[key] = getattr(args, key)
    return p


# ---------------------------------------------------------------------------- models and data
def msf_cfg(p: Dict, bank_size: int, topk: int = 5, search: str = 'torch',
            bank_dtype: str = 'float32', channels_last: bool = False, **extra) -> Dict:
    """An MSF model config for preset ``p`` (ImageNet mean/std; ShuffleBN target)."""
    backbone = dict(type='ResNet', depth=p['depth'])
    if p.get('stem', 'imagenet') == 'small':
        backbone['stem'] = 'small'
    if 'base_channels' in p:
        backbone['base_channels'] = p['base_channels']
    cfg = dict(
        type='MSF', backbone=backbone,
        neck=dict(type='MLPNeck', in_channels=p['feat'], hid_channels=p['hidden'],
                  out_channels=p['dim']),
        predictor=dict(type='MLPNeck', in_channels=p['dim'], hid_channels=p['hidden'],
                       out_channels=p['dim']),
        memory_bank=dict(type='NNMemoryBank', size=bank_size, dim=p['dim'], search=search,
                         dtype=bank_dtype),
        topk=topk,
        data_preprocessor=dict(type='MultiViewDataPreprocessor', channels_last=channels_last))
    cfg.update(extra)
    return cfg


def weak_strong_pipeline(img_size: int, views: int = 2, blur: bool = True) -> List[Dict]:
    """The reference w/s pipeline (paper §4; strong = MoCo-v2 augmentation) at ``img_size``."""
    weak = [dict(type='RandomResizedCrop', size=img_size, scale=(0.2, 1.0)),
            dict(type='RandomFlip', prob=0.5, direction='horizontal')]
    strong = [dict(type='RandomResizedCrop', size=img_size, scale=(0.2, 1.0)),
              dict(type='RandomApply', prob=0.8, transforms=[
                  dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4,
                       hue=0.1)]),
              dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
                   channel_weights=(0.114, 0.587, 0.299))]
    if blur:
        strong.append(dict(type='GaussianBlur', sigma_min=0.1, sigma_max=2.0, prob=0.5))
    strong.append(dict(type='RandomFlip', prob=0.5, direction='horizontal'))
    transforms = [weak, strong] + [weak] * (views - 2)
    return [dict(type='LoadImageFromFile'), dict(type='MultiView', transforms=transforms),
            dict(type='PackInputs')]


def build_dataset(data_root: str, pipeline: List[Dict], split: str = 'train'):
    from mmmsf.registry import DATASETS
    if not osp.isdir(osp.join(data_root, split)):
        raise SystemExit(f'--data-root {data_root!r} has no {split}/ folder of class '
                         'sub-folders (ImageFolder layout); point it at such a folder.')
    return DATASETS.build(dict(type='ImageFolder', data_root=data_root, data_prefix=split,
                               pipeline=pipeline))


def real_batches(data_root: str, img_size: int, batch: int, num_batches: int,
                 views: int = 2) -> List[Dict]:
    """``num_batches`` collated multi-view batches of real images, built once up front so the
    step benchmarks measure the model, not the data pipeline."""
    from mmengine.dataset import pseudo_collate
    ds = build_dataset(data_root, weak_strong_pipeline(img_size, views))
    out, i = [], 0
    for _ in range(num_batches):
        items = [ds[(i + j) % len(ds)] for j in range(batch)]
        i += batch
        data = pseudo_collate(items)
        data['inputs'] = [torch.stack(v) for v in data['inputs']]
        out.append(data)
    return out


def build_model(cfg: Dict, device: torch.device):
    from mmmsf.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.to(device).train()


def build_optim_wrapper(model, amp: bool = False, amp_dtype: Optional[str] = None):
    """The reference optimiser (SGD lr 0.05, momentum 0.9, wd 1e-4) in mmengine's wrapper;
    ``amp``: ``AmpOptimWrapper`` with autocast to ``amp_dtype`` (default float16)."""
    from mmengine.optim import AmpOptimWrapper, OptimWrapper
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05,
                          momentum=0.9, weight_decay=1e-4)
    if amp:
        return AmpOptimWrapper(optimizer=opt, dtype=amp_dtype)
    return OptimWrapper(optimizer=opt)


def train_step(model, data: Dict, optim_wrapper, momentum: float = 0.99) -> Dict:
    """One MSF iteration as the Runner does it: EMA update of the target (what
    ``MomentumUpdateHook`` does before each step), then ``model.train_step``."""
    model.momentum_update(momentum)
    return model.train_step(data, optim_wrapper)


class SearchTimer:
    """Accumulates the time spent in ``bank.search`` during steps (CUDA events on a GPU, so the
    step is not synchronised by the measurement)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cpu_seconds = 0.0
        self.events: List = []

    def wrap(self, bank) -> None:
        original = type(bank).search.__get__(bank)

        def timed(query, k, mask=None):
            if self.device.type == 'cuda':
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                out = original(query, k, mask)
                end.record()
                self.events.append((start, end))
                return out
            t0 = time.perf_counter()
            out = original(query, k, mask)
            self.cpu_seconds += time.perf_counter() - t0
            return out

        bank.search = timed

    def pop(self) -> float:
        """Seconds accumulated since the last call."""
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            s = sum(a.elapsed_time(b) for a, b in self.events) / 1000.0
            self.events = []
            return s
        s, self.cpu_seconds = self.cpu_seconds, 0.0
        return s


def result_payload(name: str, args, device: torch.device, settings: Dict, rows: List[Dict],
                   extra: Optional[Dict] = None) -> Dict:
    payload = dict(benchmark=name, quick=bool(args.quick), machine=machine_info(device),
                   settings=settings, results=rows)
    if extra:
        payload.update(extra)
    return payload
