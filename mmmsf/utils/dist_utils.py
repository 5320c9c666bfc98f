"""Distributed helpers that degrade to no-ops in a single process."""
from typing import Tuple

import torch
import torch.distributed as torch_dist
from mmengine.dist import all_gather, get_rank, get_world_size


def concat_all_gather(t: torch.Tensor) -> torch.Tensor:
    """All ranks' ``t`` concatenated in rank order (a no-op in a single process)."""
    if get_world_size() == 1:
        return t
    return torch.cat(all_gather(t.contiguous()), dim=0)


@torch.no_grad()
def batch_shuffle(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """MoCo's ShuffleBN: shuffle the global batch across ranks; returns (local x, unshuffle idx).

    Each rank's BN then sees a random sub-batch of the global batch, so the target's BN
    statistics cannot leak which samples belong together. Single process: a local permutation.
    """
    world = get_world_size()
    if world == 1:
        perm = torch.randperm(x.shape[0], device=x.device)
        return x[perm], torch.argsort(perm)
    local = x.shape[0]
    x_all = torch.cat(all_gather(x.contiguous()), dim=0)
    perm = torch.randperm(x_all.shape[0], device=x.device)
    torch_dist.broadcast(perm, src=0)
    unshuffle = torch.argsort(perm)
    rank = get_rank()
    mine = slice(rank * local, (rank + 1) * local)
    return x_all[perm[mine]], unshuffle[mine]


@torch.no_grad()
def batch_unshuffle(y: torch.Tensor, unshuffle: torch.Tensor) -> torch.Tensor:
    """Undo :func:`batch_shuffle` for the target's outputs ``y`` (local part)."""
    if get_world_size() == 1:
        return y[unshuffle]
    y_all = torch.cat(all_gather(y.contiguous()), dim=0)
    return y_all[unshuffle]
