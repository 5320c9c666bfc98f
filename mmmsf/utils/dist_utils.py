"""Distributed helpers that degrade to no-ops in a single process."""
from typing import Tuple

import torch
import torch.distributed as torch_dist
from mmengine.dist import all_gather, get_rank, get_world_size


def all_gather_rows(t: torch.Tensor, same_rows: bool = True) -> torch.Tensor:
    """All ranks' rows of ``t`` concatenated in rank order, on ``t``'s device and in its dtype
    (``t`` itself in a single process; bool tensors travel as uint8). ``same_rows=False``:
    the ranks may hold different numbers of rows (one more collective, for the sizes)."""
    if get_world_size() == 1:
        return t
    dtype = t.dtype
    wire = (t.to(torch.uint8) if dtype == torch.bool else t).contiguous()
    if same_rows:
        return torch.cat(all_gather(wire), dim=0).to(t.device, dtype)
    sizes = [int(s) for s in all_gather(torch.tensor([t.shape[0]], device=t.device))]
    pad = wire.new_zeros((max(sizes) - t.shape[0], ) + tuple(t.shape[1:]))
    parts = all_gather(torch.cat([wire, pad]))
    return torch.cat([p[:s] for p, s in zip(parts, sizes)]).to(t.device, dtype)


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
