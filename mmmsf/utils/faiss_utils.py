"""Exact inner-product k-NN with faiss (CPU, or GPU where faiss-gpu and CUDA are present)."""
from typing import Tuple

import numpy as np
import torch


def faiss_knn(query: torch.Tensor, keys: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(similarity, index) of the ``k`` largest inner products, (B, k) each, on query's device."""
    import faiss
    if k > keys.shape[0]:
        raise ValueError(f'k={k} > number of keys {keys.shape[0]}: lower k.')
    if query.is_cuda and hasattr(faiss, 'StandardGpuResources'):
        import faiss.contrib.torch_utils  # noqa: F401  (lets faiss take torch CUDA tensors)
        res = _gpu_resources()
        sim, idx = faiss.knn_gpu(res, query.float().contiguous(), keys.float().contiguous(), k,
                                 metric=faiss.METRIC_INNER_PRODUCT)
        return sim, idx.long()
    q = np.ascontiguousarray(query.detach().float().cpu().numpy())
    kb = np.ascontiguousarray(keys.detach().float().cpu().numpy())
    sim, idx = faiss.knn(q, kb, k, metric=faiss.METRIC_INNER_PRODUCT)
    return (torch.from_numpy(sim).to(query.device), torch.from_numpy(idx).long().to(query.device))


_RES = None


def _gpu_resources():
    global _RES
    if _RES is None:
        import faiss
        _RES = faiss.StandardGpuResources()
    return _RES
