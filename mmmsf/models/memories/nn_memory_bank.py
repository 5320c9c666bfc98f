"""The FIFO nearest-neighbour memory bank of MSF (paper §3, "memory bank").

``K`` L2-normalised target embeddings, a write pointer, and for each slot the label and dataset
index of the image it came from (``-1`` = unknown, e.g. the random initial entries). All state
is registered as buffers, so it is saved in checkpoints and restored by ``--resume``.

Every rank enqueues the *all-gathered* targets of the step, in rank order, so the banks of all
ranks stay identical (the reference code used DataParallel, where there is a single bank).
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import all_gather, get_world_size

from mmmsf.registry import MODELS

_DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16}


def concat_all_gather(t: torch.Tensor) -> torch.Tensor:
    """All ranks' ``t`` concatenated in rank order (a no-op in a single process)."""
    if get_world_size() == 1:
        return t
    return torch.cat(all_gather(t.contiguous()), dim=0)


def chunked_topk(query: torch.Tensor, keys: torch.Tensor, k: int, chunk_size: int = 65536,
                 mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k by inner product, materialising at most ``B x chunk_size`` similarities.

    Args:
        query: (B, D); keys: (K, D); mask: optional (B, K) bool, ``False`` entries are excluded
            (their similarity is treated as ``-inf``).
    Returns:
        (similarities, indices), both (B, k), sorted by decreasing similarity; among equal
        similarities the lower bank index comes first, whatever the chunk size.
    """
    num_keys = keys.shape[0]
    if k > num_keys:
        raise ValueError(f'top-k with k={k} > bank size {num_keys}: lower k or enlarge the bank.')
    best_sim = best_idx = None
    for start in range(0, num_keys, chunk_size):
        block = keys[start:start + chunk_size]
        sim = query @ block.to(query.dtype).T
        if mask is not None:
            sim = sim.masked_fill(~mask[:, start:start + block.shape[0]], float('-inf'))
        kk = min(k, block.shape[0])
        s, i = _stable_topk(sim, kk)
        i = i + start
        if best_sim is None:
            best_sim, best_idx = s, i
        else:
            best_sim, best_idx = _merge_topk(best_sim, best_idx, s, i, k)
    return best_sim, best_idx


def _stable_topk(sim: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """top-k by value, ties broken by the lower column index (``torch.topk`` alone is not)."""
    s, i = torch.topk(sim, k, dim=1)
    kth = s[:, -1:]
    if bool(((sim == kth).sum(1) != (s == kth).sum(1)).any()):  # a tie straddles the cut
        order = torch.argsort(sim, dim=1, descending=True, stable=True)[:, :k]
        return sim.gather(1, order), order
    return _sort_pairs(s, i)


def _sort_pairs(s: torch.Tensor, i: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sort (value, index) pairs by value descending, then index ascending."""
    o = torch.argsort(i, dim=1, stable=True)
    s, i = s.gather(1, o), i.gather(1, o)
    o = torch.argsort(s, dim=1, descending=True, stable=True)
    return s.gather(1, o), i.gather(1, o)


def _merge_topk(s1, i1, s2, i2, k):
    s, i = _sort_pairs(torch.cat([s1, s2], 1), torch.cat([i1, i2], 1))
    return s[:, :k], i[:, :k]


@MODELS.register_module()
class NNMemoryBank(nn.Module):
    """FIFO bank of ``size`` x ``dim`` unit vectors with exact top-k search.

    Args:
        size: K, the number of slots (1,024,000 or 128,000 for ImageNet in the paper).
        dim: embedding dimension (512 for ResNet-50).
        dtype: storage type, ``'float32'`` (reference) or ``'float16'``/``'bfloat16'``.
        search: ``'torch'`` (chunked matmul + top-k, exact) or ``'faiss'`` (exact flat search).
        chunk_size: bank rows per distance block in the torch search.
    """

    def __init__(self, size: int, dim: int, dtype: str = 'float32', search: str = 'torch',
                 chunk_size: int = 131072):
        super().__init__()
        if size <= 0 or dim <= 0:
            raise ValueError(f'NNMemoryBank needs size > 0 and dim > 0, got {size} x {dim}.')
        if dtype not in _DTYPES:
            raise KeyError(f'NNMemoryBank dtype={dtype!r}: use one of {sorted(_DTYPES)}.')
        if search not in ('torch', 'faiss'):
            raise KeyError(f"NNMemoryBank search={search!r}: use 'torch' or 'faiss'.")
        self.size, self.dim, self.search_backend = size, dim, search
        self.chunk_size = chunk_size
        bank = F.normalize(torch.randn(size, dim), dim=1).to(_DTYPES[dtype])
        self.register_buffer('bank', bank)
        self.register_buffer('ptr', torch.zeros((), dtype=torch.long))
        self.register_buffer('num_written', torch.zeros((), dtype=torch.long))
        self.register_buffer('labels', torch.full((size, ), -1, dtype=torch.long))
        self.register_buffer('sample_idx', torch.full((size, ), -1, dtype=torch.long))

    def check_batch(self, global_batch: int, k: int = 1) -> None:
        """Raise a clear error if the bank cannot work with this global batch and k."""
        if k > self.size:
            raise ValueError(f'topk k={k} is larger than the memory bank (size={self.size}): '
                             'lower k or enlarge model.memory_bank.size.')
        if global_batch > self.size or self.size % global_batch != 0:
            raise ValueError(
                f'memory bank size {self.size} is not a multiple of the global batch '
                f'{global_batch} (batch per GPU x GPUs): set model.memory_bank.size to a multiple '
                f'of {global_batch}, e.g. {max(1, self.size // global_batch) * global_batch}.')

    @torch.no_grad()
    def enqueue(self, emb: torch.Tensor, labels: Optional[torch.Tensor] = None,
                sample_idx: Optional[torch.Tensor] = None, gather: bool = True) -> torch.Tensor:
        """Write this step's (all-gathered) embeddings at the pointer; return their slots."""
        if gather:
            emb = concat_all_gather(emb)
            labels = None if labels is None else concat_all_gather(labels)
            sample_idx = None if sample_idx is None else concat_all_gather(sample_idx)
        n = emb.shape[0]
        self.check_batch(n)
        ptr = int(self.ptr)
        slots = torch.arange(ptr, ptr + n, device=self.bank.device)
        self.bank[ptr:ptr + n] = emb.detach().to(self.bank.dtype)
        self.labels[ptr:ptr + n] = -1 if labels is None else labels
        self.sample_idx[ptr:ptr + n] = -1 if sample_idx is None else sample_idx
        self.ptr.fill_((ptr + n) % self.size)
        self.num_written.add_(n)
        return slots

    @torch.no_grad()
    def search(self, query: torch.Tensor, k: int,
               mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Exact top-k neighbours of unit ``query`` (B, D): (similarity, index), (B, k) each.

        Squared Euclidean distance on unit vectors is ``2 - 2 * similarity``.
        """
        if self.search_backend == 'faiss' and mask is None:
            return self._faiss_search(query, k)
        return chunked_topk(query, self.bank, k, self.chunk_size, mask)

    def _faiss_search(self, query: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
        from mmmsf.utils.faiss_utils import faiss_knn
        return faiss_knn(query, self.bank, k)

    def get(self, indices: torch.Tensor) -> torch.Tensor:
        """Bank rows at ``indices`` (any shape), as float32-or-query precision."""
        return self.bank[indices]

    @property
    def fill(self) -> float:
        """Fraction of slots holding real (not initial random) embeddings."""
        return min(1.0, int(self.num_written) / self.size)

    def extra_repr(self) -> str:
        return (f'size={self.size}, dim={self.dim}, dtype={self.bank.dtype}, '
                f'search={self.search_backend}, '
                f'{self.bank.numel() * self.bank.element_size() / 2**20:.1f} MiB')
