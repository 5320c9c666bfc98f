"""The FIFO nearest-neighbour memory bank of MSF (paper §3, "memory bank").

``K`` L2-normalised target embeddings, a write pointer, and for each slot the label and dataset
index of the image it came from (``-1`` = unknown, e.g. the random initial entries). All state
is registered as buffers, so it is saved in checkpoints and restored by ``--resume``.

Every rank enqueues the *all-gathered* targets of the step, in rank order, so the banks of all
ranks stay identical (the reference code used DataParallel, where there is a single bank).

Cost per step (paper Table 1: the search is 0.72% of a step with 128K slots, 6.78% with 1M):
the write is an in-place copy into the ring at a pointer mirrored on the host (no device sync);
the exact search runs one GEMM per block of ``chunk_size`` slots into a single reused
``B x chunk_size`` float32 buffer and keeps only each block's top-k, so nothing bank-sized is
allocated per step. ``benchmarks/`` measures both (README, "Performance").
"""
import warnings
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import all_gather, get_world_size

from mmmsf.registry import MODELS
from .slot_mask import SlotMask

_DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16}


def concat_all_gather(t: torch.Tensor) -> torch.Tensor:
    """All ranks' ``t`` concatenated in rank order (a no-op in a single process)."""
    if get_world_size() == 1:
        return t
    return torch.cat(all_gather(t.contiguous()), dim=0)


def chunked_topk(query: torch.Tensor, keys: torch.Tensor, k: int, chunk_size: int = 65536,
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
    s, i = _sort_pairs(torch.cat(cand_s, 1), torch.cat(cand_i, 1))
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


def _sort_pairs(s: torch.Tensor, i: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sort (value, index) pairs by value descending, then index ascending."""
    o = torch.argsort(i, dim=1, stable=True)
    s, i = s.gather(1, o), i.gather(1, o)
    o = torch.argsort(s, dim=1, descending=True, stable=True)
    return s.gather(1, o), i.gather(1, o)


def _merge_topk(s1, i1, s2, i2, k):
    s, i = _sort_pairs(torch.cat([s1, s2], 1), torch.cat([i1, i2], 1))
    return s[:, :k], i[:, :k]


_FAISS = None


def _faiss_importable() -> bool:
    global _FAISS
    if _FAISS is None:
        try:
            import faiss  # noqa: F401
            _FAISS = True
        except ImportError:
            _FAISS = False
    return _FAISS


@MODELS.register_module()
class NNMemoryBank(nn.Module):
    """FIFO bank of ``size`` x ``dim`` unit vectors with exact top-k search.

    Args:
        size: K, the number of slots (1,024,000 or 128,000 for ImageNet in the paper).
        dim: embedding dimension (512 for ResNet-50).
        dtype: storage type, ``'float32'`` (reference) or ``'float16'``/``'bfloat16'``.
        search: ``'torch'`` (chunked matmul + top-k), ``'faiss'`` (faiss's flat search) or
            ``'auto'`` (faiss for a CPU bank, where it is the faster kernel -- see
            ``benchmarks/search_kernel.py`` --, torch for a CUDA bank). All are exact and return
            the same neighbours in the same order (ties: lower bank index first).
        chunk_size: bank rows per distance block of the torch search (and per faiss GEMM on
            the CPU): a search holds at most ``B x chunk_size`` float32 similarities.
    """

    def __init__(self, size: int, dim: int, dtype: str = 'float32', search: str = 'torch',
                 chunk_size: int = 131072):
        super().__init__()
        if size <= 0 or dim <= 0:
            raise ValueError(f'NNMemoryBank needs size > 0 and dim > 0, got {size} x {dim}.')
        if dtype not in _DTYPES:
            raise KeyError(f'NNMemoryBank dtype={dtype!r}: use one of {sorted(_DTYPES)}.')
        if search not in ('torch', 'faiss', 'auto'):
            raise KeyError(f"NNMemoryBank search={search!r}: use 'torch', 'faiss' or 'auto'.")
        if chunk_size < 1:
            raise ValueError(f'NNMemoryBank chunk_size={chunk_size} must be >= 1.')
        self.size, self.dim, self.search_backend = size, dim, search
        self.chunk_size = chunk_size
        bank = F.normalize(torch.randn(size, dim), dim=1).to(_DTYPES[dtype])
        self.register_buffer('bank', bank)
        self.register_buffer('ptr', torch.zeros((), dtype=torch.long))
        self.register_buffer('num_written', torch.zeros((), dtype=torch.long))
        self.register_buffer('labels', torch.full((size, ), -1, dtype=torch.long))
        self.register_buffer('sample_idx', torch.full((size, ), -1, dtype=torch.long))
        self._host_cache: dict = {}
        self._faiss_gpu: Optional[bool] = None

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

    # ------------------------------------------------------------------ host mirrors
    def _host_int(self, name: str) -> int:
        """Value of the 0-d buffer ``name`` as a Python int, read from the device only when the
        buffer was replaced or modified outside :meth:`enqueue` (``load_state_dict``, ``to()``,
        an in-place write): its identity and version counter are compared, no sync otherwise.
        """
        t = getattr(self, name)
        cached = self._host_cache.get(name)
        version = getattr(t, '_version', None)
        if cached is not None and cached[0] is t and version is not None \
                and cached[1] == version:
            return cached[2]
        value = int(t)
        self._host_cache[name] = (t, version, value)
        return value

    def _set_host_int(self, name: str, value: int) -> None:
        t = getattr(self, name)
        self._host_cache[name] = (t, getattr(t, '_version', None), value)

    @property
    def write_pointer(self) -> int:
        """The next slot to write (``ptr``) as a Python int, without a device round trip."""
        return self._host_int('ptr')

    @property
    def total_written(self) -> int:
        """How many embeddings were ever enqueued (``num_written``), without a device sync."""
        return self._host_int('num_written')

    # ------------------------------------------------------------------ ring buffer
    @torch.no_grad()
    def enqueue(self, emb: torch.Tensor, labels: Optional[torch.Tensor] = None,
                sample_idx: Optional[torch.Tensor] = None, gather: bool = True) -> torch.Tensor:
        """Write this step's (all-gathered) embeddings at the pointer; return their slots.

        The write is an in-place copy into the ring (with the cast to the storage dtype fused
        into the copy); the pointer is read from a host-side mirror, so no step waits for the
        device.
        """
        if gather:
            emb = concat_all_gather(emb)
            labels = None if labels is None else concat_all_gather(labels)
            sample_idx = None if sample_idx is None else concat_all_gather(sample_idx)
        n = emb.shape[0]
        if emb.dim() != 2 or emb.shape[1] != self.dim:
            raise ValueError(f'NNMemoryBank.enqueue expects (N, {self.dim}) embeddings, got '
                             f'{tuple(emb.shape)}: make the projection output memory_bank.dim.')
        self.check_batch(n)
        ptr = self._host_int('ptr')
        written = self._host_int('num_written')
        slots = torch.arange(ptr, ptr + n, device=self.bank.device)
        self.bank[ptr:ptr + n].copy_(emb.detach())
        if labels is None:
            self.labels[ptr:ptr + n].fill_(-1)
        else:
            self.labels[ptr:ptr + n].copy_(labels)
        if sample_idx is None:
            self.sample_idx[ptr:ptr + n].fill_(-1)
        else:
            self.sample_idx[ptr:ptr + n].copy_(sample_idx)
        new_ptr = (ptr + n) % self.size
        self.ptr.fill_(new_ptr)
        self.num_written.fill_(written + n)
        self._set_host_int('ptr', new_ptr)
        self._set_host_int('num_written', written + n)
        return slots

    @torch.no_grad()
    def search(self, query: torch.Tensor, k: int,
               mask: Optional[Union[torch.Tensor, SlotMask]] = None
               ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Exact top-k neighbours of unit ``query`` (B, D): (similarity, index), (B, k) each.

        Squared Euclidean distance on unit vectors is ``2 - 2 * similarity``. Masked searches
        (CMSF's constrained sets) always use the chunked torch search.
        """
        if mask is None and self._use_faiss():
            return self._faiss_search(query, k)
        return chunked_topk(query, self.bank, k, self.chunk_size, mask)

    def _use_faiss(self) -> bool:
        if self.search_backend == 'torch':
            return False
        if self.search_backend == 'auto':
            return not self.bank.is_cuda and _faiss_importable()
        return self._faiss_usable()

    def _faiss_usable(self) -> bool:
        """faiss searches a CUDA bank only with faiss-gpu; faiss-cpu would copy the whole bank
        to the host every step, so the (exact, equal) torch search on the GPU is used instead."""
        if not self.bank.is_cuda:
            return True
        if self._faiss_gpu is None:
            from mmmsf.utils.faiss_utils import gpu_search_available
            self._faiss_gpu = gpu_search_available()
            if not self._faiss_gpu:
                warnings.warn('NNMemoryBank search=\'faiss\' with a CUDA bank needs faiss-gpu; '
                              'using the torch search on the GPU instead.')
        return self._faiss_gpu

    def _faiss_search(self, query: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """faiss's exact search with the torch search's contract: equal similarities are
        ordered by bank index, and a tie across the k-th place (faiss's heap keeps either
        entry) is settled by the exact torch search. One extra neighbour reveals such ties."""
        from mmmsf.utils.faiss_utils import faiss_knn
        kk = min(k + 1, self.size)
        sim, idx = faiss_knn(query, self.bank, kk, chunk_size=self.chunk_size)
        if kk > k:
            if bool((sim[:, k] == sim[:, k - 1]).any()):
                return chunked_topk(query, self.bank, k, self.chunk_size)
            sim, idx = sim[:, :k], idx[:, :k]
        return _sort_pairs(sim, idx)

    @property
    def nbytes(self) -> int:
        """Bytes held by the bank's buffers (embeddings, labels, dataset indices, pointers)."""
        return sum(b.numel() * b.element_size() for b in self.buffers())

    def get(self, indices: torch.Tensor) -> torch.Tensor:
        """Bank rows at ``indices`` (any shape), as float32-or-query precision."""
        return self.bank[indices]

    @property
    def fill(self) -> float:
        """Fraction of slots holding real (not initial random) embeddings."""
        return min(1.0, self.total_written / self.size)

    def extra_repr(self) -> str:
        return (f'size={self.size}, dim={self.dim}, dtype={self.bank.dtype}, '
                f'search={self.search_backend}, '
                f'{self.bank.numel() * self.bank.element_size() / 2**20:.1f} MiB')
