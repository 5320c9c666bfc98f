"""Build an mmengine Runner for pre-training and run it (used by tools/train.py)."""
import os
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.runner import Runner


def prepare_train_cfg(cfg: Config, work_dir: Optional[str] = None, resume: Optional[str] = None,
                      amp: bool = False, launcher: str = 'none') -> Config:
    """Fill in the run-specific parts of a pre-training config."""
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(cfg.filename))[0])
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif resume is not None:
        cfg.resume, cfg.load_from = True, resume
    if amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') != 'OptimWrapper':
            raise ValueError('--amp works with optim_wrapper.type=OptimWrapper only.')
        if torch.cuda.is_available():
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
        else:  # mmengine's AmpOptimWrapper refuses the CPU
            cfg.optim_wrapper.type = 'CPUAutocastOptimWrapper'
            cfg.optim_wrapper.setdefault('dtype', 'bfloat16')
    if launcher != 'none' and not torch.cuda.is_available():
        # CPU multi-process: gloo, and DDP without device ids.
        cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
        cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None,
                                     broadcast_buffers=False)
    return cfg


def disable_validation(cfg: Config) -> Config:
    """Train without the online kNN validation (``tools/train.py --no-validate``)."""
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    return cfg


def enable_tensorboard(cfg: Config) -> Config:
    """Log every scalar to TensorBoard too: mmengine's ``TensorboardVisBackend`` next to the
    local JSON backend (``tools/train.py --tensorboard``); the event files go to
    ``<work_dir>/<timestamp>/vis_data/``."""
    vis = cfg.get('visualizer') or dict(type='Visualizer')
    backends = list(vis.get('vis_backends') or [dict(type='LocalVisBackend')])
    if not any(b.get('type') == 'TensorboardVisBackend' for b in backends):
        backends.append(dict(type='TensorboardVisBackend'))
    vis['vis_backends'] = backends
    cfg.visualizer = vis
    return cfg


def init_cpu_distributed(launcher: str) -> None:
    """Start the gloo process group for CPU-only multi-process runs.

    mmengine's ``init_dist`` always calls ``torch.cuda.set_device``, which fails without a GPU;
    a process group that already exists is used as it is.
    """
    import torch.distributed as dist
    if launcher == 'pytorch' and not torch.cuda.is_available() and not dist.is_initialized():
        dist.init_process_group(backend='gloo', rank=int(os.environ['RANK']),
                                world_size=int(os.environ['WORLD_SIZE']))


def train(cfg: Config) -> Runner:
    """Build the runner from ``cfg`` and train; returns the runner (its model holds the result)."""
    init_cpu_distributed(cfg.get('launcher', 'none'))
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        from mmengine.registry import RUNNERS
        runner = RUNNERS.build(cfg)
    runner.train()
    return runner
