"""Slots split across ranks: the layout, exact top-k over shards, and the row exchanges it needs.

Layout. A sharded table of ``K`` rows (memory-bank slots) is split into ``W`` equal contiguous
shards: rank ``r`` holds global rows ``[r K/W, (r+1) K/W)`` (:func:`equal_shard`). A per-image
table of ``N`` rows, where ``N`` need not divide by ``W``, uses ``ceil(N/W)`` rows per rank
(:func:`ceil_shard`). The owner of global row ``i`` is ``i // rows_per_rank`` in both cases.

Exact search (:func:`sharded_topk`). Every rank searches its shard for the same ``R`` query rows
(the all-gathered queries of the step) and keeps each query's top-k, ties by index. The
candidates -- similarity and global slot, 16 bytes each -- go to the rank that owns the query
(rows are split into ``W`` contiguous groups, one all-to-all); the owner merges the ``W k``
candidates of each query with the order of the replicated search (similarity descending, then
the lower global slot), and the merged lists are all-gathered, so every rank ends with the
neighbours of every query, exactly as a search of the whole bank gives them. The neighbour
vectors themselves travel only to the rank whose loss needs them (:func:`fetch_rows`).

Per step and rank this moves ``R k`` candidates in and out twice, and the rows a rank asks for.

Exactness. Every decision is the replicated search's: the same candidates, the same order
(similarity descending, then the lower global slot), so equal embeddings -- true ties -- always
resolve the same way. The similarities themselves come from GEMMs of other shapes (a shard's
columns, all ranks' queries) than the replicated search's blocks, and a BLAS may round those
differently in the last bit (seen at D = 8 on this CPU): two *distinct* entries whose
similarities to a query are within one float32 ulp can then swap -- as they can between two
chunk sizes of the replicated search. In every test the neighbours, losses and banks of the two
are bit-identical.

Every function here is a collective when the default process group has more than one rank:
each rank must call it, in the same order, with the same ``R``. In a single process they are
the plain local operations.
"""
from typing import Callable, List, Optional, Tuple, Union

import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from mmengine.dist import get_rank, get_world_size
from mmengine.dist.utils import get_comm_device

from .knn_search import sort_pairs
from .slot_mask import SlotMask

LocalSearch = Callable[[torch.Tensor, int, Optional[SlotMask]], Tuple[torch.Tensor, torch.Tensor]]


# ---------------------------------------------------------------------- layout
def check_divisible(size: int, world: int, what: str = 'model.memory_bank.size') -> None:
    """A sharded bank needs ``size % world == 0``; one error naming the fix otherwise."""
    if size % world:
        lower = max(world, size // world * world)
        raise ValueError(f'a sharded memory bank needs {what}={size} to be a multiple of the '
                         f'world size {world} (each rank holds size / world slots): set it to '
                         f'{lower} or {lower + world}, run on a world size that divides it, or '
                         'set model.memory_bank.sharded=False.')


def equal_shard(size: int, rank: int, world: int) -> Tuple[int, int]:
    """Global rows ``[start, stop)`` of rank ``rank`` in ``world`` equal shards of ``size``."""
    check_divisible(size, world)
    per = size // world
    return rank * per, (rank + 1) * per


def ceil_shard(num_rows: int, rank: int, world: int) -> Tuple[int, int]:
    """``ceil(num_rows / world)`` rows per rank (the last ranks may hold fewer, or none)."""
    per = -(-num_rows // world)
    start = min(num_rows, rank * per)
    return start, min(num_rows, start + per)


def rows_per_rank(num_rows: int, world: int) -> int:
    return -(-num_rows // world)


@torch.no_grad()
def random_unit_rows(num_rows: int, dim: int, keep: Optional[Tuple[int, int]] = None,
                     generator: Optional[torch.Generator] = None,
                     chunk_rows: int = 8192) -> torch.Tensor:
    """Rows ``keep`` of ``F.normalize(torch.randn(num_rows, dim), dim=1)``, holding one chunk.

    The chunks draw the very stream the whole tensor would (CPU normal sampling works in runs of
    16 values: every chunk but the last has a multiple of 16 values and the last has >= 16), so
    every rank's shard holds exactly the rows of the replicated initial bank, and the random
    state afterwards is the same as after one ``torch.randn(num_rows, dim)``.
    """
    start, stop = keep if keep is not None else (0, num_rows)
    step = max(16, chunk_rows // 16 * 16)  # rows; step * dim is a multiple of 16
    bounds = list(range(0, num_rows, step)) + [num_rows]
    if len(bounds) > 2 and (bounds[-1] - bounds[-2]) * dim < 16:
        del bounds[-2]  # a last chunk under 16 values would take the scalar sampling path
    out = torch.empty(stop - start, dim)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        block = F.normalize(torch.randn(hi - lo, dim, generator=generator), dim=1)
        a, b = max(lo, start), min(hi, stop)
        if a < b:
            out[a - start:b - start] = block[a - lo:b - lo]
    return out


def local_view(mask: Union[SlotMask, torch.Tensor], start: int, stop: int) -> SlotMask:
    """The columns ``[start, stop)`` of a (R, K) mask over global slots, as a (R, stop-start)
    mask over the local slots (built block by block, like the mask itself)."""
    mask = SlotMask.coerce(mask)
    return SlotMask((mask.shape[0], stop - start),
                    lambda s, e: mask.block(start + s, start + e))


# ---------------------------------------------------------------------- collectives
def _comm(t: torch.Tensor) -> torch.Tensor:
    """``t`` on the device the default group communicates on (CPU for gloo, CUDA for nccl)."""
    dev = get_comm_device()
    return t if t.device == dev else t.to(dev)


def _all_gather_cat(t: torch.Tensor) -> torch.Tensor:
    world = get_world_size()
    t = _comm(t.contiguous())
    out = [torch.empty_like(t) for _ in range(world)]
    torch_dist.all_gather(out, t)
    return torch.cat(out, dim=0)


@torch.no_grad()
def sharded_topk(query: torch.Tensor, k: int, local_search: LocalSearch,
                 shard: Tuple[int, int], num_slots: int,
                 mask: Optional[Union[SlotMask, torch.Tensor]] = None
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k of the ``R`` rows of ``query`` (the same on every rank) over all shards.

    Args:
        local_search: ``(query, k, mask) -> (similarities, local slot)`` over this rank's slots
            (exact, sorted, ties by lower slot; ``mask`` over local slots or None).
        shard: this rank's global slots ``[start, stop)``; ``num_slots``: K.
        mask: optional (R, K) mask over global slots (``False`` = excluded).
    Returns:
        (similarities float32, global slots), both (R, k) and identical on every rank: what the
        search of the unsharded bank returns, in the same order with the same ties.
    """
    start, stop = shard
    r, dev = query.shape[0], query.device
    kk = min(k, stop - start)
    sims, idx = local_search(query, kk, None if mask is None else local_view(mask, start, stop))
    idx = idx + start
    if kk < k:  # a shard smaller than k: pad with entries that sort after every real one
        sims = torch.cat([sims, sims.new_full((r, k - kk), float('-inf'))], 1)
        idx = torch.cat([idx, idx.new_full((r, k - kk), num_slots)], 1)
    world = get_world_size()
    if world == 1:
        return sims, idx
    per = -(-r // world)  # query rows merged by each rank
    packed = torch.zeros(per * world, k, 2, dtype=torch.float64, device=dev)
    packed[:r, :, 0] = sims  # float32 and slot numbers < 2**53 are exact in float64
    packed[:r, :, 1] = idx
    packed = _comm(packed)
    recv = torch.empty_like(packed)
    torch_dist.all_to_all_single(recv, packed)
    cand = recv.view(world, per, k, 2).permute(1, 0, 2, 3).reshape(per, world * k, 2)
    ms, mi = sort_pairs(cand[..., 0].float(), cand[..., 1].long())
    merged = torch.stack([ms[:, :k].double(), mi[:, :k].double()], dim=2)
    everything = _all_gather_cat(merged)[:r].to(dev)
    return everything[..., 0].float().contiguous(), everything[..., 1].long().contiguous()


@torch.no_grad()
def sharded_count(mask: Union[SlotMask, torch.Tensor], shard: Tuple[int, int],
                  chunk_size: int) -> torch.Tensor:
    """|C(b)| over all shards for every row of a (R, K) global-slot mask; (R,) int32."""
    local = local_view(mask, *shard).count(chunk_size)
    if get_world_size() == 1:
        return local
    dev = local.device
    local = _comm(local.contiguous())
    torch_dist.all_reduce(local)
    return local.to(dev)


@torch.no_grad()
def fetch_rows(table: torch.Tensor, start: int, per_rank: int,
               index: torch.Tensor) -> torch.Tensor:
    """``full_table[index]`` for a table whose global rows are spread over the ranks.

    ``table`` holds this rank's rows ``[start, start + len(table))``; global row ``i`` lives
    on rank ``i // per_rank``. Every rank passes its own ``index`` (any shape, any count,
    entries in ``[0, total)``) and receives only the rows it asked for (one all-gather of the
    requests, one all-to-all of the rows). Returns ``(*index.shape, *table.shape[1:])`` with
    ``table``'s dtype, on ``index``'s device.
    """
    flat = index.reshape(-1).long()
    feat = tuple(table.shape[1:])
    if get_world_size() == 1:
        return table[(flat - start).to(table.device)].to(index.device).reshape(
            *index.shape, *feat)
    world, rank = get_world_size(), get_rank()
    dtype = table.dtype
    wire = torch.uint8 if dtype == torch.bool else dtype  # gloo has no bool collectives
    n = torch.tensor([flat.numel()], dtype=torch.long)
    counts = _all_gather_cat(n).cpu().tolist()
    width = max(counts)
    req = torch.full((width, ), -1, dtype=torch.long, device=flat.device)
    req[:flat.numel()] = flat
    reqs = _all_gather_cat(req).view(world, width).to(table.device)
    pieces, send_sizes = [], []
    for w in range(world):
        want = reqs[w, :counts[w]]
        mine = want[(want // per_rank) == rank]
        pieces.append(table[mine - start])
        send_sizes.append(mine.numel())
    send = _comm(torch.cat(pieces).to(wire).contiguous())
    owner = flat // per_rank
    recv_sizes = torch.bincount(owner, minlength=world).cpu().tolist()
    recv = torch.empty((sum(recv_sizes), *feat), dtype=wire, device=send.device)
    torch_dist.all_to_all_single(recv, send, recv_sizes, send_sizes)
    out = torch.empty((flat.numel(), *feat), dtype=dtype, device=index.device)
    pos = 0
    owner = owner.to(index.device)
    for s in range(world):
        if recv_sizes[s]:
            out[owner == s] = recv[pos:pos + recv_sizes[s]].to(index.device, dtype)
            pos += recv_sizes[s]
    return out.reshape(*index.shape, *feat)


@torch.no_grad()
def gather_shards(table: torch.Tensor, total: int, per_rank: int, dst: int = 0,
                  chunk_rows: int = 65536) -> Optional[torch.Tensor]:
    """The whole table (``total`` rows) on rank ``dst``'s CPU, ``None`` on the other ranks.

    Each rank contributes its ``len(table) <= per_rank`` rows; the rows travel ``chunk_rows``
    at a time, so a device holds at most ``world x chunk_rows`` rows of it at once.
    """
    world, rank = get_world_size(), get_rank()
    if world == 1:
        return table.detach().cpu().clone()
    feat, dtype = tuple(table.shape[1:]), table.dtype
    wire = torch.uint8 if dtype == torch.bool else dtype
    full = torch.empty((total, *feat), dtype=dtype) if rank == dst else None
    for off in range(0, per_rank, chunk_rows):
        rows = min(chunk_rows, per_rank - off)
        piece = torch.zeros((rows, *feat), dtype=wire, device=table.device)
        have = table[off:off + rows]
        piece[:have.shape[0]] = have.to(wire)
        piece = _comm(piece)
        bucket = [torch.empty_like(piece) for _ in range(world)] if rank == dst else None
        torch_dist.gather(piece, bucket, dst=dst)
        if rank == dst:
            for w, got in enumerate(bucket):
                lo = w * per_rank + off
                hi = min(total, lo + rows, (w + 1) * per_rank)
                if hi > lo:
                    full[lo:hi] = got[:hi - lo].cpu().to(dtype)
    return full


@torch.no_grad()
def sharded_unconstrained_ranks(query: torch.Tensor, keys: torch.Tensor, start: int,
                                indices: torch.Tensor, chunk_size: int = 16384) -> torch.Tensor:
    """:func:`~mmmsf.utils.knn_search.unconstrained_ranks` over a sharded bank (``keys``: this
    rank's slots from global slot ``start``), for the same (R, D) ``query`` and (R, k) global
    ``indices`` on every rank: the similarity of each selected slot comes from its owner, the
    entries ranked before it are counted on every shard and summed; (R, k) long everywhere."""
    b, k = indices.shape
    dev = query.device
    sel = torch.zeros(b, k, dtype=torch.float32, device=dev)
    n = keys.shape[0]
    for s in range(0, n, chunk_size):
        sim = (query @ keys[s:s + chunk_size].to(query.dtype).T).float()
        g = start + s
        inside = (indices >= g) & (indices < g + sim.shape[1])
        local = (indices - g).clamp(0, sim.shape[1] - 1)
        sel = torch.where(inside, sim.gather(1, local), sel)
    if get_world_size() > 1:  # one owner per entry, zeros elsewhere: the sum is exact
        sel = _comm(sel)
        torch_dist.all_reduce(sel)
        sel = sel.to(dev)
    before = torch.zeros(b, k, dtype=torch.long, device=dev)
    for s in range(0, n, chunk_size):
        sim = (query @ keys[s:s + chunk_size].to(query.dtype).T).float()[:, None, :]
        col = torch.arange(start + s, start + s + sim.shape[2], device=dev)
        ahead = (sim > sel[..., None]) | ((sim == sel[..., None]) &
                                          (col[None, None, :] < indices[..., None]))
        before += ahead.sum(dim=2)
    if get_world_size() > 1:
        before = _comm(before)
        torch_dist.all_reduce(before)
        before = before.to(dev)
    return before + 1


__all__: List[str] = ['check_divisible', 'equal_shard', 'ceil_shard', 'rows_per_rank',
                      'random_unit_rows', 'local_view', 'sharded_topk', 'sharded_count',
                      'fetch_rows', 'gather_shards', 'sharded_unconstrained_ranks']
