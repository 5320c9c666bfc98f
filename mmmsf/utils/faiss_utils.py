"""Exact inner-product k-NN with faiss (CPU, or GPU where faiss-gpu and CUDA are present)."""
import contextlib
from typing import Iterator, Optional, Tuple

import numpy as np
import torch

DEFAULT_CHUNK = 131072


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
    results merged, so no float32 copy of the whole bank is ever made.
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
    from mmmsf.models.memories.nn_memory_bank import _merge_topk
    staging = np.empty((min(chunk, keys.shape[0]), keys.shape[1]), dtype=np.float32)
    best_s = best_i = None
    for start in range(0, keys.shape[0], chunk):
        block = keys[start:start + chunk]
        buf = staging[:block.shape[0]]
        torch.from_numpy(buf).copy_(block)
        with blas_search(buf.shape[0]):
            s, i = faiss.knn(q, buf, min(k, block.shape[0]), metric=faiss.METRIC_INNER_PRODUCT)
        s, i = torch.from_numpy(s), torch.from_numpy(i) + start
        best_s, best_i = (s, i) if best_s is None else _merge_topk(best_s, best_i, s, i, k)
    return best_s.to(query.device), best_i.to(query.device)


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
