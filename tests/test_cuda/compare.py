"""Reference computations and comparisons shared by the GPU tests.

Each helper is also used by a CPU-parametrised case of the same test, so the logic that judges
the GPU results runs (and can fail) on every machine.
"""
from typing import List, Tuple

import numpy as np
import pytest
import torch

CUDA = pytest.param('cuda', marks=pytest.mark.cuda)
DEVICES = ['cpu', CUDA]  # every test that takes ``device`` runs on the CPU and, marked, on a GPU


def require_faiss_gpu() -> None:
    """Skip (with the reason) where faiss cannot search CUDA tensors."""
    from mmmsf.utils.knn_search import gpu_search_available
    if not gpu_search_available():
        pytest.skip('needs faiss-gpu (faiss has no StandardGpuResources or sees no GPU): '
                    'pip install -r requirements/faiss-gpu.txt')


def integer_bank(size: int, dim: int, queries: int, seed: int = 0
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Keys and queries with entries in {-2, ..., 2}: every inner product is a small integer,
    exact in float32, TF32 and float16 alike, so ties are exact on every device and backend
    (and frequent: the k-th and (k+1)-th similarities are equal for most queries). Some keys
    are planted duplicates of earlier ones, some queries duplicates of keys."""
    g = torch.Generator().manual_seed(seed)
    keys = torch.randint(-2, 3, (size, dim), generator=g).float()
    keys[size // 2:size // 2 + 64] = keys[:64]
    q = torch.randint(-2, 3, (queries, dim), generator=g).float()
    q[:8] = keys[100:108]
    return keys, q


def copies_bank(size: int, dim: int, queries: int, copies: int = 3, seed: int = 0
                ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Keys with exactly dim/2 entries of +-1 (the rest 0), so every key has the same norm and
    q.k = |q|^2 only for an exact copy of q. Each query is planted ``copies`` times at random
    places: its top ``copies`` neighbours are an exact tie, and the next similarity is
    strictly lower -- ties inside the top-k, none across the cut."""
    g = torch.Generator().manual_seed(seed)

    def rows(n):
        signs = torch.randint(0, 2, (n, dim), generator=g).float() * 2 - 1
        return signs * (torch.rand(n, dim, generator=g).argsort(dim=1) < dim // 2)

    keys, q = rows(size), rows(queries)
    slots = torch.randperm(size, generator=g)[:queries * copies].view(queries, copies)
    for i in range(queries):
        keys[slots[i]] = q[i]
    return keys, q


def reference_topk(query: torch.Tensor, keys: torch.Tensor, k: int
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Dense float64 top-k on the CPU: similarity descending, ties by lower index."""
    s = query.double().cpu() @ keys.double().cpu().T
    order = torch.argsort(-s, dim=1, stable=True)[:, :k]
    return s.gather(1, order), order


def neighbour_mismatches(ref: Tuple[torch.Tensor, torch.Tensor],
                         got: Tuple[torch.Tensor, torch.Tensor], atol: float = 0.0,
                         name: str = '') -> List[str]:
    """Rows where ``got`` (sims, idx) differs from ``ref``: other indices, or similarities off
    by more than ``atol``. Empty list = identical neighbours in identical order."""
    rs, ri = (t.detach().cpu() for t in ref)
    gs, gi = (t.detach().cpu() for t in got)
    if gi.shape != ri.shape:
        return [f'{name}: shape {tuple(gi.shape)} != {tuple(ri.shape)}']
    out = []
    bad_idx = (gi.long() != ri.long()).any(dim=1)
    bad_sim = ((gs.double() - rs.double()).abs() > atol).any(dim=1)
    for r in torch.nonzero(bad_idx | bad_sim).flatten().tolist()[:5]:
        out.append(f'{name} row {r}: indices {gi[r].tolist()} vs {ri[r].tolist()}, '
                   f'sims {gs[r].tolist()} vs {rs[r].tolist()}')
    n = int((bad_idx | bad_sim).sum())
    if n > 5:
        out.append(f'{name}: {n} rows differ in all')
    return out


def tie_rows(ref_sims: torch.Tensor, k: int, query: torch.Tensor, keys: torch.Tensor) -> int:
    """How many queries have a tie across the k-th place (the case the tie rule decides)."""
    s = query.double().cpu() @ keys.double().cpu().T
    kth = ref_sims[:, k - 1:k]
    return int(((s == kth).sum(dim=1) > (ref_sims == kth).sum(dim=1)).sum())


def overlap(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean share of the neighbours in rows of ``a`` also found in the same rows of ``b``."""
    a, b = a.cpu(), b.cpu()
    return float((a[:, :, None] == b[:, None, :]).any(dim=2).float().mean())


def half_rounding_bound(dtype: torch.dtype) -> float:
    """Bound on |q.k - round(q).round(k)| for unit q, k rounded to ``dtype`` (both rounded:
    each factor moves by at most its unit roundoff u in norm, so 2u + u^2)."""
    u = {torch.float16: 2.0 ** -11, torch.bfloat16: 2.0 ** -8, torch.float32: 2.0 ** -24}[dtype]
    return 2 * u + u * u


def losses_close(a: float, b: float, atol: float, rtol: float) -> bool:
    """Both finite and |a - b| <= atol + rtol * |a|."""
    return bool(np.isfinite(a) and np.isfinite(b) and abs(a - b) <= atol + rtol * abs(a))
