"""The FIFO nearest-neighbour memory bank of MSF (paper §3, "memory bank").

``K`` L2-normalised target embeddings, a write pointer, and for each slot the label and dataset
index of the image it came from (``-1`` = unknown, e.g. the random initial entries). All state
is registered as buffers, so it is saved in checkpoints and restored by ``--resume``.

Every rank enqueues the *all-gathered* targets of the step, in rank order, so the banks of all
ranks stay identical (the reference code used DataParallel, where there is a single bank).

**Sharded** (``sharded=True``): rank ``r`` of ``W`` holds only the slots
``[r K/W, (r+1) K/W)`` -- ``K D bytes / W`` of memory -- and writes the part of each
all-gathered batch that lands there, so the global slots are those of the replicated bank.
:meth:`search` is then a collective over the same query rows on every rank (the selectors run
on the all-gathered queries): each rank searches its shard, the owners of the queries merge the
candidates, and every rank gets exactly the replicated bank's neighbours, in the same order,
ties by global slot (:mod:`mmmsf.utils.sharding`). :meth:`get` and :meth:`get_labels` fetch the
rows a rank's loss needs from their owners. Checkpoints hold the whole bank
(:mod:`mmmsf.utils.sharded_state`), so a run resumes on any world size, sharded or not.

Cost per step (paper Table 1: the search is 0.72% of a step with 128K slots, 6.78% with 1M):
the write is an in-place copy into the ring at a pointer mirrored on the host (no device sync);
the exact search (:mod:`mmmsf.utils.knn_search`) runs one GEMM per block of ``chunk_size``
slots into a single reused ``B x chunk_size`` float32 buffer and keeps only each block's top-k,
so nothing bank-sized is allocated per step. ``benchmarks/`` measures both
(docs/performance.md).
"""
import warnings
from typing import Optional, Tuple, Union

import torch

from mmengine.dist import get_rank, get_world_size

from mmmsf.registry import MODELS
from mmmsf.utils import knn_search, sharding
from mmmsf.utils.dist_utils import all_gather_rows
from mmmsf.utils.sharded_state import ShardedState
from mmmsf.utils.slot_mask import SlotMask
from .neighbour_bank import SlotFn

_DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16}


@MODELS.register_module()
class NNMemoryBank(ShardedState):
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
        sharded: split the slots across the ranks of the default process group (module
            docstring); the world size must divide ``size``.
    """

    def __init__(self, size: int, dim: int, dtype: str = 'float32', search: str = 'torch',
                 chunk_size: int = knn_search.DEFAULT_CHUNK, sharded: bool = False):
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
        self.sharded = bool(sharded)
        world = get_world_size() if self.sharded else 1
        self.shard = sharding.equal_shard(size, get_rank() if self.sharded else 0, world)
        start, stop = self.shard
        self.local_size = stop - start
        # the rows of the replicated initial bank, one chunk at a time (same random stream)
        bank = sharding.random_unit_rows(size, dim, keep=self.shard).to(_DTYPES[dtype])
        self.register_buffer('bank', bank)
        self.register_buffer('ptr', torch.zeros((), dtype=torch.long))
        self.register_buffer('num_written', torch.zeros((), dtype=torch.long))
        self.register_buffer('labels', torch.full((self.local_size, ), -1, dtype=torch.long))
        self.register_buffer('sample_idx', torch.full((self.local_size, ), -1,
                                                      dtype=torch.long))
        for name in ('bank', 'labels', 'sample_idx'):
            self.register_sharded(name, size, start, stop, self.local_size)
        self._host_cache: dict = {}
        self._faiss_gpu: Optional[bool] = None
        self._last_write: Optional[Tuple[torch.Tensor, ...]] = None

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
            emb = all_gather_rows(emb)
            labels = None if labels is None else all_gather_rows(labels)
            sample_idx = None if sample_idx is None else all_gather_rows(sample_idx)
        n = emb.shape[0]
        if emb.dim() != 2 or emb.shape[1] != self.dim:
            raise ValueError(f'NNMemoryBank.enqueue expects (N, {self.dim}) embeddings, got '
                             f'{tuple(emb.shape)}: make the projection output memory_bank.dim.')
        self.check_batch(n)
        ptr = self._host_int('ptr')
        written = self._host_int('num_written')
        slots = torch.arange(ptr, ptr + n, device=self.bank.device)
        # this rank's part of the write (all of it unless sharded); K % n == 0: no wrap inside
        start, stop = self.shard
        lo, hi = max(ptr, start), min(ptr + n, stop)
        if lo < hi:
            dst, src = slice(lo - start, hi - start), slice(lo - ptr, hi - ptr)
            self.bank[dst].copy_(emb[src].detach())
            if labels is None:
                self.labels[dst].fill_(-1)
            else:
                self.labels[dst].copy_(labels[src])
            if sample_idx is None:
                self.sample_idx[dst].fill_(-1)
            else:
                self.sample_idx[dst].copy_(sample_idx[src])
        if self.is_split:  # what was written, for read_written() (no other rank has it)
            self._last_write = (slots, emb.detach().to(self.bank.dtype),
                                None if sample_idx is None else sample_idx.detach())
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
        (CMSF's constrained sets) always use the chunked torch search. ``mask`` is (B, K) over
        the global slots. On a sharded bank this is a collective: every rank passes the same
        ``query`` rows and mask and gets the same answer, the replicated bank's.
        """
        if not self.is_split:
            return self._local_search(query, k, mask)
        return sharding.sharded_topk(query, k, self._local_search, self.shard, self.size, mask)

    def _local_search(self, query: torch.Tensor, k: int,
                      mask: Optional[Union[torch.Tensor, SlotMask]] = None
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Exact top-k over the slots this rank holds (all of them unless sharded)."""
        if mask is None and self._use_faiss():
            return knn_search.faiss_topk(query, self.bank, k, self.chunk_size)
        return knn_search.chunked_topk(query, self.bank, k, self.chunk_size, mask)

    @torch.no_grad()
    def search_keys(self, query: torch.Tensor, keys: torch.Tensor, k: int,
                    mask: Optional[Union[torch.Tensor, SlotMask]] = None
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Exact top-k in another per-slot table sharded like this bank (CMSF-2Q's M': this
        rank's rows ``keys``); a collective on a sharded bank, as :meth:`search`."""
        def local(q, kk, m):
            return knn_search.chunked_topk(q, keys, kk, self.chunk_size, m)

        if not self.is_split:
            return local(query, k, mask)
        return sharding.sharded_topk(query, k, local, self.shard, self.size, mask)

    @torch.no_grad()
    def count(self, mask: Union[torch.Tensor, SlotMask]) -> torch.Tensor:
        """|C(b)| of a (B, K) global-slot mask, (B,) int32 (a collective on a sharded bank)."""
        if not self.is_split:
            return SlotMask.coerce(mask).count(self.chunk_size)
        return sharding.sharded_count(mask, self.shard, self.chunk_size)

    # ------------------------------------------------------------------ per-slot data
    def slot_fn(self, table: torch.Tensor) -> SlotFn:
        """``(start, stop) -> rows`` of a per-slot table held like the bank (this rank's rows
        of it), addressed by global slot -- what :class:`SlotMask` constructors take. A sharded
        search only asks a rank for its own slots."""
        offset = self.shard[0]
        if offset == 0:
            return lambda s, e: table[s:e]
        return lambda s, e: table[s - offset:e - offset]

    def local_slots(self, slots: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(which of the global ``slots`` this rank holds (bool), their local positions)."""
        start, stop = self.shard
        mine = (slots >= start) & (slots < stop)
        return mine, (slots - start)[mine]

    def read_written(self, slots: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(embeddings as stored, dataset indices) of the slots the last enqueue wrote."""
        if not self.is_split:
            return self.bank[slots], self.sample_idx[slots]
        last = self._last_write
        if last is None or not torch.equal(last[0], slots.to(last[0].device)):
            raise RuntimeError('NNMemoryBank.read_written: pass the slots of the last enqueue.')
        idx = last[2] if last[2] is not None else torch.full_like(slots, -1)
        return last[1], idx

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
        """Bytes held by the bank's buffers on this rank (embeddings, labels, dataset indices,
        pointers): ``K D bytes / W`` plus 16 bytes per local slot when sharded."""
        return sum(b.numel() * b.element_size() for b in self.buffers())

    def get(self, indices: torch.Tensor) -> torch.Tensor:
        """Bank rows at global slots ``indices`` (any shape), in the storage dtype. Sharded:
        a collective in which every rank asks for its own rows (fetched from their owners)."""
        if not self.is_split:
            return self.bank[indices]
        return sharding.fetch_rows(self.bank, self.shard[0], self.local_size, indices)

    def get_labels(self, indices: torch.Tensor) -> torch.Tensor:
        """Labels of the entries at global slots ``indices`` (a collective when sharded)."""
        if not self.is_split:
            return self.labels[indices]
        return sharding.fetch_rows(self.labels, self.shard[0], self.local_size, indices)

    @torch.no_grad()
    def unconstrained_ranks(self, query: torch.Tensor, indices: torch.Tensor,
                            chunk_size: int = 16384) -> torch.Tensor:
        """1-based rank of slot ``indices[b, j]`` in query ``b``'s unconstrained order (see
        :func:`~mmmsf.utils.knn_search.unconstrained_ranks`); a collective over the same rows
        on every rank when sharded."""
        if not self.is_split:
            return knn_search.unconstrained_ranks(query, self.bank, indices, chunk_size)
        return sharding.sharded_unconstrained_ranks(query, self.bank, self.shard[0], indices,
                                                    chunk_size)

    @property
    def fill(self) -> float:
        """Fraction of slots holding real (not initial random) embeddings."""
        return min(1.0, self.total_written / self.size)

    def extra_repr(self) -> str:
        shard = f', slots {self.shard[0]}:{self.shard[1]} on this rank' if self.is_split \
            else ''
        return (f'size={self.size}, dim={self.dim}, dtype={self.bank.dtype}, '
                f'search={self.search_backend}, '
                f'{self.bank.numel() * self.bank.element_size() / 2**20:.1f} MiB{shard}')
