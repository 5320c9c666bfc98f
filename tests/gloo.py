"""Real gloo process groups on the loopback address, for the multi-process tests.

``start_gloo`` forks the ranks: they inherit the imported modules (spawned ranks re-import
torch, mmengine and mmmsf, seconds each). ``init_gloo`` makes every rank single-threaded, so no
OpenMP thread pool is used across the fork.
"""
import socket
from contextlib import ExitStack
from typing import Callable, List, Sequence

import torch
import torch.multiprocessing as mp
import torch.nn as nn

from mmmsf.registry import MODELS


@MODELS.register_module(force=True)
class ToyEncoder(nn.Module):
    """A BN-free encoder (pooled linear features) for models across ranks: torch's
    SyncBatchNorm needs CUDA, and without BN the ranks' losses are comparable."""

    def __init__(self, out: int = 16):
        super().__init__()
        self.fc = nn.Linear(3 * 4 * 4, out)
        self.feat_dim = out

    def forward(self, x):
        return torch.relu(self.fc(nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)))


def free_ports(n: int) -> List[int]:
    """``n`` distinct free TCP ports of 127.0.0.1."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(('127.0.0.1', 0))
        return [s.getsockname()[1] for s in socks]


def free_port() -> int:
    return free_ports(1)[0]


def init_gloo(rank: int, world: int, port: int) -> None:
    """mmmsf's default scope, one thread (torch and faiss), and the gloo process group."""
    import faiss
    from mmengine.registry import init_default_scope
    init_default_scope('mmmsf')
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    torch.distributed.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                                         rank=rank, world_size=world)


def start_gloo(fn: Callable, args: Sequence, nprocs: int) -> None:
    """``fn(rank, *args)`` in ``nprocs`` forked processes; raises if any of them fails."""
    mp.start_processes(fn, args=tuple(args), nprocs=nprocs, join=True, start_method='fork')
