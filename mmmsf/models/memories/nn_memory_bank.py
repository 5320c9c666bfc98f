"""The FIFO nearest-neighbour memory bank of MSF (paper §3, "memory bank").

``K`` L2-normalised target embeddings, a write pointer, and for each slot the label and dataset
index of the image it came from (``-1`` = unknown, e.g. the random initial entries). All state
is registered as buffers, so it is saved in checkpoints and restored by ``--resume``.

Every rank enqueues the *all-gathered* targets of the step, in rank order, so the banks of all
ranks stay identical (the reference code used DataParallel, where there is a single bank).

Cost per step (paper Table 1: the search is 0.72% of a step with 128K slots, 6.78% with 1M):
the write is an in-place copy into the ring at a pointer mirrored on the host (no device sync);
the exact search (:mod:`mmmsf.utils.knn_search`) runs one GEMM per block of ``chunk_size``
slots into a single reused ``B x chunk_size`` float32 buffer and keeps only each block's top-k,
so nothing bank-sized is allocated per step. ``benchmarks/`` measures both (README,
"Performance").
"""
import warnings
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmmsf.registry import MODELS
from mmmsf.utils import knn_search
from mmmsf.utils.dist_utils import concat_all_gather
from mmmsf.utils.slot_mask import SlotMask

_DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16}


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
                 chunk_size: int = knn_search.DEFAULT_CHUNK):
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
            return knn_search.faiss_topk(query, self.bank, k, self.chunk_size)
        return knn_search.chunked_topk(query, self.bank, k, self.chunk_size, mask)

    def _use_faiss(self) -> bool:
        if self.search_backend == 'torch':
            return False
        if self.search_backend == 'auto':
            return not self.bank.is_cuda and knn_search.faiss_importable()
        return self._faiss_usable()

    def _faiss_usable(self) -> bool:
        """faiss searches a CUDA bank only with faiss-gpu; faiss-cpu would copy the whole bank
        to the host every step, so the (exact, equal) torch search on the GPU is used instead."""
        if not self.bank.is_cuda:
            return True
        if self._faiss_gpu is None:
            self._faiss_gpu = knn_search.gpu_search_available()
            if not self._faiss_gpu:
                warnings.warn('NNMemoryBank search=\'faiss\' with a CUDA bank needs faiss-gpu; '
                              'using the torch search on the GPU instead.')
        return self._faiss_gpu

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
