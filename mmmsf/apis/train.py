"""Build an mmengine Runner for pre-training and run it (used by tools/train.py)."""
import os
import os.path as osp
import subprocess
from typing import Dict, Optional

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
    """Build the runner from ``cfg`` and train; returns the runner (its model holds the result)."""
    init_cpu_distributed(cfg.get('launcher', 'none'))
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        from mmengine.registry import RUNNERS
        runner = RUNNERS.build(cfg)
    runner.train()
    return runner
