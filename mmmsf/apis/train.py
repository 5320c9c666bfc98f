"""Build an mmengine Runner for pre-training and run it (used by tools/train.py)."""
import contextlib
import os
import os.path as osp
import subprocess
from typing import Dict, Optional

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mmmsf.registry import MODELS, RUNNERS
from mmmsf.utils.checkpoint import check_checkpoint_file, check_checkpoint_fits, latest_checkpoint
from mmmsf.utils.config_text import reuse_config_formatting
from mmmsf.utils.misc import get_ori_model
from mmmsf.utils.work_dir_lock import work_dir_lock


def prepare_train_cfg(cfg: Config, work_dir: Optional[str] = None, resume: Optional[str] = None,
                      amp: bool = False, launcher: str = 'none') -> Config:
    """Fill in the run-specific parts of a pre-training config."""
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(cfg.filename))[0])
    if resume in ('auto', 'if-any'):
        latest = latest_checkpoint(cfg.work_dir)
        if latest is not None:
            cfg.resume, cfg.load_from = True, latest
        elif resume == 'auto':
            raise FileNotFoundError(
                f'--resume: work dir {cfg.work_dir!r} has no checkpoint to resume from (no '
                'last_checkpoint file naming an existing checkpoint). Name one with --resume '
                'CKPT, drop --resume to start fresh, or use --resume-if-any to start fresh when '
                'there is none.')
        else:
            print(f'--resume-if-any: no checkpoint in {cfg.work_dir!r}; starting fresh.',
                  flush=True)
            cfg.resume, cfg.load_from = False, None
    elif resume is not None:
        check_checkpoint_file(resume)
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


def slurm_environment() -> Dict[str, str]:
    """RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT of a Slurm job step, derived as
    mmengine's slurm launcher does: from SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID and the first
    host of SLURM_NODELIST (``scontrol show hostname``); MASTER_ADDR/MASTER_PORT set in the
    environment win (default port 29500)."""
    missing = [k for k in ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST') if k not in os.environ]
    if missing:
        raise RuntimeError(f'--launcher slurm needs the environment of a Slurm job step '
                           f'({", ".join(missing)} unset): start it with srun, e.g. '
                           'bash tools/slurm_train.sh PARTITION JOB CONFIG GPUS.')
    env = dict(RANK=os.environ['SLURM_PROCID'], WORLD_SIZE=os.environ['SLURM_NTASKS'],
               LOCAL_RANK=os.environ.get('SLURM_LOCALID', '0'),
               MASTER_PORT=os.environ.get('MASTER_PORT', '29500'))
    addr = os.environ.get('MASTER_ADDR')
    if addr is None:
        out = subprocess.run(['scontrol', 'show', 'hostname', os.environ['SLURM_NODELIST']],
                             capture_output=True, text=True)
        hosts = out.stdout.split()
        if out.returncode != 0 or not hosts:
            raise RuntimeError(f'scontrol show hostname {os.environ["SLURM_NODELIST"]} failed '
                               f'({out.stderr.strip()}): set MASTER_ADDR to the first node.')
        addr = hosts[0]
    env['MASTER_ADDR'] = addr
    return env


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
    """Start the gloo process group for CPU-only multi-process runs (pytorch and slurm launchers).

    mmengine's ``init_dist`` always calls ``torch.cuda.set_device``, which fails without a GPU;
    a process group that already exists is used as it is.
    """
    import torch.distributed as dist
    if launcher not in ('pytorch', 'slurm') or torch.cuda.is_available() or dist.is_initialized():
        return
    if launcher == 'slurm':
        os.environ.update(slurm_environment())
    dist.init_process_group(backend='gloo', rank=int(os.environ['RANK']),
                            world_size=int(os.environ['WORLD_SIZE']))


def train(cfg: Config) -> Runner:
    """Build the runner from ``cfg`` and train; returns the runner (its model holds the result).

    Rank 0 holds the work dir's lock (:mod:`mmmsf.utils.work_dir_lock`) from before the runner
    is built until training ends: a second run in the same work dir is refused."""
    reuse_config_formatting()  # the config text of every checkpoint: formatted once
    launcher = cfg.get('launcher', 'none')
    init_cpu_distributed(launcher)
    rank = 0 if launcher == 'none' else int(os.environ.get('RANK',
                                                           os.environ.get('SLURM_PROCID', 0)))
    world = 1 if launcher == 'none' else int(os.environ.get('WORLD_SIZE',
                                                            os.environ.get('SLURM_NTASKS', 1)))
    check_bank_and_batch(cfg, world)
    with work_dir_lock(cfg.work_dir) if rank == 0 else contextlib.nullcontext():
        return _build_and_train(cfg)


def check_bank_and_batch(cfg: Config, world: int) -> None:
    """The memory bank's size must be a multiple of the global batch (each step writes one
    global batch of slots), which also shares a sharded bank equally among ``world`` processes:
    one error with sizes that satisfy both, before the model is built."""
    bank = (cfg.get('model') or {}).get('memory_bank')
    loader = cfg.get('train_dataloader') or {}
    if not isinstance(bank, dict) or not isinstance(bank.get('size'), int) or \
            not isinstance(loader.get('batch_size'), int):
        return
    init_default_scope(cfg.get('default_scope', 'mmmsf'))
    cls = MODELS.get(bank.get('type', ''))
    if cls is None or not hasattr(cls, 'check_batch'):
        return
    size, per = bank['size'], loader['batch_size']
    batch = per * world
    if size % batch == 0:
        return
    lower = max(batch, size // batch * batch)
    sharded = (' and shares the sharded bank equally among the processes'
               if bank.get('sharded') is True and world > 1 else '')
    raise ValueError(f'model.memory_bank.size={size} must be a multiple of the global batch '
                     f'{batch} ({per} per process x {world} processes: every step writes one '
                     f'global batch of slots{sharded}): set it to {lower} or {lower + batch}, '
                     'or change train_dataloader.batch_size or the number of processes.')


def _build_and_train(cfg: Config) -> Runner:
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:  # mmmsf's ShardedStateRunner (default_runtime.py), or any registered Runner
        runner = RUNNERS.build(cfg)
    model = get_ori_model(runner.model)
    if cfg.get('load_from'):  # resume or load_from: the whole model must fit, in one message
        check_checkpoint_fits(model, cfg.load_from, resume=bool(cfg.get('resume')))
    try:
        runner.train()
    finally:
        release_loader_workers(runner)
    return runner


def release_loader_workers(runner: Runner) -> None:
    """End the persistent loader workers of ``runner``'s data loaders now, while their queues
    are intact.

    The Runner sits in reference cycles, so its loaders are freed by the garbage collector,
    which may close a worker's index queue before the loader's iterator asks the worker to
    stop; torch then waits 5 s per worker before it terminates them. Dropping the iterator here
    (by reference count, nothing else holds it) stops the workers at once; the next
    ``iter(loader)`` starts new ones.
    """
    for name in ('_train_loop', '_val_loop', '_test_loop'):
        loader = getattr(getattr(runner, name, None), 'dataloader', None)  # loops once built
        if isinstance(loader, torch.utils.data.DataLoader) and \
                getattr(loader, '_iterator', None) is not None:
            loader._iterator = None
