"""Exact inner-product k-nearest-neighbour search, and faiss k-means.

The kernels behind MSF's memory bank (paper §3; Table 1 times the search at 0.72% of a step with
a 128K bank, 6.78% with 1M) and CMSF's constrained searches and clustering:

* :func:`chunked_topk`: exact top-k by inner product with torch, one GEMM per block of
  ``chunk_size`` keys into a single reused ``B x chunk_size`` float32 buffer, each block keeping
  its top-k; an optional :class:`~mmmsf.utils.slot_mask.SlotMask` restricts every query to its
  own set of keys. Among equal similarities the lower key index comes first, whatever the chunk
  size -- exactly what a dense stable sort of ``query @ keys.T`` gives.
* :func:`faiss_topk`: the same contract on faiss's flat search (:func:`faiss_knn`), with ties
  across the k-th place settled by :func:`chunked_topk`.
* :func:`merge_topk`: merge two top-k candidate lists under the same order.
* :func:`unconstrained_ranks`: 1-based rank of given keys in a query's unconstrained order.
* :func:`faiss_kmeans_assign`: faiss k-means (CMSF-KM's clustering).

faiss is imported lazily, so everything but the faiss paths works without it.
"""
import contextlib
from typing import Iterator, Optional, Tuple, Union

import numpy as np
import torch

from .slot_mask import SlotMask

#: Keys per distance block (torch) and per faiss GEMM (CPU): a search holds at most
#: ``B x DEFAULT_CHUNK`` float32 similarities.
DEFAULT_CHUNK = 131072


# ---------------------------------------------------------------------------- torch search
def chunked_topk(query: torch.Tensor, keys: torch.Tensor, k: int,
                 chunk_size: int = DEFAULT_CHUNK,
                 mask: Optional[Union[torch.Tensor, SlotMask]] = None
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k by inner product, materialising at most ``B x chunk_size`` similarities.

    The similarities of one block of ``chunk_size`` keys are written into a single reused
    float32 buffer (the only bank-proportional temporary; a float16/bfloat16 bank on the CPU
    also needs one float32 copy of the block), each block keeps its top-k candidates, and one
    final sort of the ``B x k * blocks`` candidates gives the answer.

    Args:
        query: (B, D); keys: (K, D), any float dtype; mask: optional (B, K) bool tensor or
            :class:`SlotMask` (built one block at a time), ``False`` entries are excluded
            (their similarity is treated as ``-inf``).
    Returns:
        (similarities, indices), both (B, k), similarities in float32, sorted by decreasing
        similarity; among equal similarities the lower bank index comes first, whatever the
        chunk size -- exactly what a dense stable sort of ``query @ keys.T`` gives.
    """
    if query.dim() != 2 or keys.dim() != 2 or query.shape[1] != keys.shape[1]:
        raise ValueError(f'chunked_topk needs query (B, D) and keys (K, D), got '
                         f'{tuple(query.shape)} and {tuple(keys.shape)}.')
    num_keys, b = keys.shape[0], query.shape[0]
    if k > num_keys:
        raise ValueError(f'top-k with k={k} > bank size {num_keys}: lower k or enlarge the bank.')
    if k < 1 or chunk_size < 1:
        raise ValueError(f'chunked_topk needs k >= 1 and chunk_size >= 1, got {k}, {chunk_size}.')
    if mask is not None:
        mask = SlotMask.coerce(mask)
        if mask.shape != (b, num_keys):
            raise ValueError(f'search mask must be (B, K) = {(b, num_keys)}, got {mask.shape}.')
    # On a GPU the tie check of every block is one device-to-host copy; it is deferred to a
    # single check per search (ties between distinct embeddings essentially never occur). With
    # a mask, ``-inf`` ties are the rule, so those searches resolve them block by block.
    defer = query.is_cuda and mask is None
    out = _chunked_topk_pass(query, keys, k, chunk_size, mask, fix_ties=not defer)
    if defer and bool(out[2]):
        out = _chunked_topk_pass(query, keys, k, chunk_size, mask, fix_ties=True)
    return out[0], out[1]


def _chunked_topk_pass(query, keys, k, chunk_size, mask, fix_ties: bool):
    """One pass over the bank; returns (sims, indices, any unresolved tie (bool tensor))."""
    num_keys, b = keys.shape[0], query.shape[0]
    q = query.float()
    block_rows = min(chunk_size, num_keys)
    dist = torch.empty(b * block_rows, dtype=torch.float32, device=query.device)
    staging = None  # float32 copy of a low-precision key block (CPU)
    if keys.dtype != torch.float32 and not query.is_cuda:
        staging = torch.empty(block_rows, keys.shape[1], dtype=torch.float32,
                              device=keys.device)
    cand_s, cand_i, tie_flags = [], [], []
    neg_inf = torch.full((), float('-inf'), device=query.device)
    for start in range(0, num_keys, chunk_size):
        block = keys[start:start + chunk_size]
        n = block.shape[0]
        sim = dist[:b * n].view(b, n)
        _block_similarities(q, block, sim, staging)
        if mask is not None:
            torch.where(mask.block(start, start + n), sim, neg_inf, out=sim)
        kk = min(k, n)
        if n > kk:
            s, i = torch.topk(sim, kk + 1, dim=1)  # sorted; the (kk+1)-th reveals a tie
            tie = s[:, kk] == s[:, kk - 1]
            s, i = s[:, :kk], i[:, :kk]
            if fix_ties:
                if bool(tie.any()):
                    s, i = _resolve_cut_ties(sim, s, i, tie)
            else:
                tie_flags.append(tie.any())
        else:
            s = sim.clone()
            i = torch.arange(n, device=sim.device).expand(b, n)
        cand_s.append(s)
        cand_i.append(i + start)
    s, i = sort_pairs(torch.cat(cand_s, 1), torch.cat(cand_i, 1))
    unresolved = torch.stack(tie_flags).any() if tie_flags else torch.zeros((), dtype=torch.bool)
    return s[:, :k].contiguous(), i[:, :k].contiguous(), unresolved


def _block_similarities(q: torch.Tensor, block: torch.Tensor, out: torch.Tensor,
                        staging: Optional[torch.Tensor]) -> None:
    """``out = q @ block.T`` in float32, written in place (no allocation for fp32 keys)."""
    if block.dtype == torch.float32:
        torch.mm(q, block.T, out=out)
    elif staging is not None:  # CPU: low-precision GEMMs are slow without AVX-512 BF16/FP16
        buf = staging[:block.shape[0]]
        buf.copy_(block)
        torch.mm(q, buf.T, out=out)
    else:  # GPU: tensor-core GEMM on the stored precision, float32 accumulation and output
        try:
            out.copy_(torch.mm(q.to(block.dtype), block.T, out_dtype=torch.float32))
        except (TypeError, RuntimeError):
            torch.mm(q, block.float().T, out=out)


def _resolve_cut_ties(sim: torch.Tensor, s: torch.Tensor, i: torch.Tensor,
                      tie: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """In rows where equal values straddle the top-k cut, keep the lowest-index ones.

    Overwrites the block ``sim`` (not needed afterwards) with a tie score, so resolving costs
    one bool block and no copy -- with a mask, ``-inf`` ties occur in almost every block.
    """
    kk, n = s.shape[1], sim.shape[1]
    t = s[:, kk - 1:kk]
    eq = sim == t
    eq &= tie[:, None]
    # score: tied entries by increasing column (n, n-1, ...; exact in float32), all others -1
    desc = torch.arange(n, 0, -1, device=sim.device, dtype=sim.dtype)
    torch.where(eq, desc, desc.new_full((), -1.0), out=sim)
    tied = torch.topk(sim, kk, dim=1).indices
    above = (s > t).sum(dim=1, keepdim=True)  # entries strictly above the tied value
    pos = torch.arange(kk, device=sim.device)[None, :]
    keep = (pos < above) | ~tie[:, None]
    i = torch.where(keep, i, tied.gather(1, (pos - above).clamp(min=0)))
    s = torch.where(keep, s, t.expand(-1, kk))
    return s, i


def sort_pairs(s: torch.Tensor, i: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sort (value, index) pairs by value descending, then index ascending."""
    o = torch.argsort(i, dim=1, stable=True)
    s, i = s.gather(1, o), i.gather(1, o)
    o = torch.argsort(s, dim=1, descending=True, stable=True)
    return s.gather(1, o), i.gather(1, o)


def merge_topk(s1: torch.Tensor, i1: torch.Tensor, s2: torch.Tensor, i2: torch.Tensor,
               k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The top-k of two candidate lists (B, k1) and (B, k2), in :func:`sort_pairs` order."""
    s, i = sort_pairs(torch.cat([s1, s2], 1), torch.cat([i1, i2], 1))
    return s[:, :k], i[:, :k]


@torch.no_grad()
def unconstrained_ranks(query: torch.Tensor, keys: torch.Tensor, indices: torch.Tensor,
                        chunk_size: int = 16384) -> torch.Tensor:
    """1-based rank of bank entry ``indices[b, j]`` in the unconstrained order of query ``b``:
    similarity descending, ties by lower index (the order of :func:`chunked_topk`); (B, k) long.
    """
    b, k = indices.shape
    sel = torch.empty(b, k, dtype=torch.float32, device=query.device)
    for start in range(0, keys.shape[0], chunk_size):
        sim = (query @ keys[start:start + chunk_size].to(query.dtype).T).float()
        inside = (indices >= start) & (indices < start + sim.shape[1])
        local = (indices - start).clamp(0, sim.shape[1] - 1)
        sel = torch.where(inside, sim.gather(1, local), sel)
    ranks = torch.ones(b, k, dtype=torch.long, device=query.device)
    for start in range(0, keys.shape[0], chunk_size):
        sim = (query @ keys[start:start + chunk_size].to(query.dtype).T).float()[:, None, :]
        col = torch.arange(start, start + sim.shape[2], device=query.device)
        before = (sim > sel[..., None]) | ((sim == sel[..., None]) &
                                           (col[None, None, :] < indices[..., None]))
        ranks += before.sum(dim=2)
    return ranks


# ---------------------------------------------------------------------------- faiss search
_FAISS: Optional[bool] = None


def faiss_importable() -> bool:
    """Whether ``import faiss`` works (checked once)."""
    global _FAISS
    if _FAISS is None:
        try:
            import faiss  # noqa: F401
            _FAISS = True
        except ImportError:
            _FAISS = False
    return _FAISS


@contextlib.contextmanager
def blas_search(database_block: int) -> Iterator[None]:
    """Run faiss's CPU brute-force search on its BLAS path, ``database_block`` keys per GEMM.

    faiss's defaults send fewer than ``distance_compute_blas_threshold`` queries (128,000 in
    faiss 1.15) to a per-pair SIMD loop and cut the database into 1,024-row GEMMs; for a
    training batch against a large bank both are several times slower than one GEMM per block
    of keys. faiss then holds one (queries x ``database_block``) float32 distance block, the
    same bound as the torch search. The globals are restored on exit.
    """
    import faiss
    old = (faiss.cvar.distance_compute_blas_threshold,
           faiss.cvar.distance_compute_blas_database_bs)
    faiss.cvar.distance_compute_blas_threshold = 1
    faiss.cvar.distance_compute_blas_database_bs = int(database_block)
    try:
        yield
    finally:
        (faiss.cvar.distance_compute_blas_threshold,
         faiss.cvar.distance_compute_blas_database_bs) = old


def faiss_knn(query: torch.Tensor, keys: torch.Tensor, k: int,
              chunk_size: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """(similarity, index) of the ``k`` largest inner products, (B, k) each, on query's device.

    float32 keys are handed to faiss without a copy (CPU: a zero-copy numpy view; GPU:
    ``faiss.knn_gpu`` on the torch tensors). float16/bfloat16 keys are searched as stored on
    the GPU; on the CPU they are converted ``chunk_size`` rows at a time and the per-chunk
    results merged, so no float32 copy of the whole bank is ever made. The order among equal
    similarities is faiss's; :func:`faiss_topk` gives the :func:`chunked_topk` order.
    """
    import faiss
    if query.dim() != 2 or keys.dim() != 2 or query.shape[1] != keys.shape[1]:
        raise ValueError(f'faiss_knn needs query (B, D) and keys (K, D), got '
                         f'{tuple(query.shape)} and {tuple(keys.shape)}.')
    if k > keys.shape[0]:
        raise ValueError(f'k={k} > number of keys {keys.shape[0]}: lower k.')
    if query.is_cuda and hasattr(faiss, 'StandardGpuResources'):
        import faiss.contrib.torch_utils  # noqa: F401  (lets faiss take torch CUDA tensors)
        res = gpu_resources()
        kb = keys.detach().contiguous()
        q = query.detach().to(kb.dtype).contiguous()
        sim, idx = faiss.knn_gpu(res, q, kb, k, metric=faiss.METRIC_INNER_PRODUCT)
        return sim, idx.long()
    chunk = chunk_size or DEFAULT_CHUNK
    q = np.ascontiguousarray(query.detach().float().cpu().numpy())
    keys = keys.detach()
    if keys.dtype == torch.float32:
        kb = np.ascontiguousarray(keys.cpu().numpy())
        with blas_search(min(chunk, kb.shape[0])):
            sim, idx = faiss.knn(q, kb, k, metric=faiss.METRIC_INNER_PRODUCT)
        return (torch.from_numpy(sim).to(query.device),
                torch.from_numpy(idx).long().to(query.device))
    staging = np.empty((min(chunk, keys.shape[0]), keys.shape[1]), dtype=np.float32)
    best_s = best_i = None
    for start in range(0, keys.shape[0], chunk):
        block = keys[start:start + chunk]
        buf = staging[:block.shape[0]]
        torch.from_numpy(buf).copy_(block)
        with blas_search(buf.shape[0]):
            s, i = faiss.knn(q, buf, min(k, block.shape[0]), metric=faiss.METRIC_INNER_PRODUCT)
        s, i = torch.from_numpy(s), torch.from_numpy(i) + start
        best_s, best_i = (s, i) if best_s is None else merge_topk(best_s, best_i, s, i, k)
    return best_s.to(query.device), best_i.to(query.device)


def faiss_topk(query: torch.Tensor, keys: torch.Tensor, k: int,
               chunk_size: int = DEFAULT_CHUNK) -> Tuple[torch.Tensor, torch.Tensor]:
    """faiss's exact search with the :func:`chunked_topk` contract: equal similarities are
    ordered by index, and a tie across the k-th place (faiss's heap keeps either entry) is
    settled by the exact torch search. One extra neighbour reveals such ties."""
    kk = min(k + 1, keys.shape[0])
    sim, idx = faiss_knn(query, keys, kk, chunk_size=chunk_size)
    if kk > k:
        if bool((sim[:, k] == sim[:, k - 1]).any()):
            return chunked_topk(query, keys, k, chunk_size)
        sim, idx = sim[:, :k], idx[:, :k]
    return sort_pairs(sim, idx)


def gpu_search_available() -> bool:
    """Whether faiss can search CUDA tensors in place (faiss-gpu built with CUDA, a GPU seen)."""
    try:
        import faiss
    except ImportError:
        return False
    return hasattr(faiss, 'StandardGpuResources') and faiss.get_num_gpus() > 0


_RES = None


def gpu_resources():
    """One ``faiss.StandardGpuResources`` per process (GPU scratch memory, streams)."""
    global _RES
    if _RES is None:
        import faiss
        _RES = faiss.StandardGpuResources()
    return _RES


# ---------------------------------------------------------------------------- k-means
def faiss_kmeans_assign(x: np.ndarray, num_clusters: int, niter: int = 20, seed: int = 0,
                        gpu: Union[bool, str] = 'auto',
                        max_points_per_centroid: Optional[int] = None) -> np.ndarray:
    """faiss k-means (L2) of the rows of ``x`` (n, d) float32; each row's nearest centroid, (n,).

    CMSF-KM (paper §3.1) clusters every image's latest target embedding each epoch (ImageNet:
    50,000 clusters, 20 iterations). ``gpu='auto'`` uses faiss-gpu where it and CUDA exist.
    ``max_points_per_centroid``: faiss subsamples ``k * max_points_per_centroid`` points for
    training (faiss default 256); the authors' code sets 10,000,000, i.e. no subsampling.
    """
    import faiss
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    if num_clusters < 1 or num_clusters > n:
        raise ValueError(f'k-means with {num_clusters} clusters needs 1 <= clusters <= the '
                         f'{n} cached embeddings: lower num_clusters of KMeansClusterHook.')
    use_gpu = (hasattr(faiss, 'StandardGpuResources') and faiss.get_num_gpus() > 0
               and torch.cuda.is_available()) if gpu == 'auto' else bool(gpu)
    kw = dict(niter=niter, seed=seed, gpu=use_gpu, verbose=False)
    if max_points_per_centroid is not None:
        kw['max_points_per_centroid'] = max_points_per_centroid
    km = faiss.Kmeans(d, num_clusters, **kw)
    km.train(x)
    _, assign = km.index.search(x, 1)
    return assign[:, 0].astype(np.int64)
