"""Per-dataset cache of the latest target embedding of every image (N x D).

CMSF needs, for every dataset image, its most recent target embedding: CMSF-KM clusters them at
each epoch end, semi-supervised CMSF trains its pseudo-labeller on those of the labelled images,
and the released code's CMSF-2Q reads an image's previous-visit embedding from it. Every rank
writes the all-gathered targets of each step, so all ranks hold the same cache.

With a sharded memory bank the cache is sharded too (``sharded=True``, which CMSF sets from the
bank), by dataset index: rank ``r`` of ``W`` holds images ``[r c, (r+1) c)``, ``c = ceil(N/W)``,
and writes the part of each all-gathered batch that falls there. :meth:`get` fetches rows from
their owners (every rank asks for its own queries' rows), :meth:`gather_valid_rows` brings the
written rows to the rank that clusters or trains on them, and checkpoints hold the whole cache.

With ImageNet, N x D is 1.28M x 512 floats = 2.6 GB (1.3 GB in float16): it must not be assumed
to fit next to the model on one GPU. ``placement`` says where it lives:

* ``'auto'`` (default): pinned CPU memory when the model is on a GPU and N is larger than
  ``device_limit`` (CMSF sets it to the memory-bank size), else the model's device;
* ``'device'``: the model's device; ``'cpu'``: CPU memory; ``'pinned'``: pinned CPU memory
  (plain CPU memory where CUDA is absent).

The storage is not a module buffer, so ``model.to(device)`` leaves it where it is; it is still
saved in and restored from checkpoints (``embeddings``, ``valid``). It is allocated when the
dataset size is known (:class:`~mmmsf.engine.hooks.EmbeddingCacheHook`, before the run) or when
a checkpoint is loaded.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn

from mmengine.dist import get_rank, get_world_size

from mmmsf.registry import MODELS
from mmmsf.utils import sharding
from mmmsf.utils.dist_utils import all_gather_rows
from mmmsf.utils.sharded_state import SHARD_KEY, ShardedState

_DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16}
PLACEMENTS = ('auto', 'device', 'cpu', 'pinned')


@MODELS.register_module()
class EmbeddingCache(ShardedState):
    """N x D latest target embeddings with a per-image ``valid`` flag (written at least once).

    Args:
        dim: embedding dimension D (CMSF fills it in from the memory bank when omitted).
        placement: ``'auto'``, ``'device'``, ``'cpu'`` or ``'pinned'`` (module docstring).
        dtype: storage type, ``'float32'`` or ``'float16'``/``'bfloat16'`` (half the memory).
        device_limit: with ``'auto'``, caches of more than this many images leave the GPU.
        seed: seed of the random unit vectors that never-written rows start with.
        sharded: hold only this rank's images (module docstring).
    """

    def __init__(self, dim: Optional[int] = None, placement: str = 'auto',
                 dtype: str = 'float32', device_limit: Optional[int] = None, seed: int = 0,
                 sharded: bool = False):
        super().__init__()
        if placement not in PLACEMENTS:
            raise KeyError(f'EmbeddingCache placement={placement!r}: use one of {PLACEMENTS}.')
        if dtype not in _DTYPES:
            raise KeyError(f'EmbeddingCache dtype={dtype!r}: use one of {sorted(_DTYPES)}.')
        self.dim, self.placement, self.dtype = dim, placement, _DTYPES[dtype]
        self.device_limit, self.seed = device_limit, seed
        self.sharded = bool(sharded)
        self._num_images = 0
        self.rows = (0, 0)  # the images this rank holds
        # empty marker buffer: follows model.to(), tells where the model lives
        self.register_buffer('_device_probe', torch.zeros(0), persistent=False)
        self.embeddings = torch.zeros(0, dim or 0, dtype=self.dtype)
        self.valid = torch.zeros(0, dtype=torch.bool)

    # ------------------------------------------------------------------ placement
    @property
    def num_images(self) -> int:
        """N, the images of the dataset (all ranks together when sharded)."""
        return self._num_images

    def _layout(self, num_images: int) -> Tuple[int, int]:
        world = get_world_size() if self.sharded else 1
        rank = get_rank() if self.sharded else 0
        self._num_images = num_images
        self.rows = sharding.ceil_shard(num_images, rank, world)
        per = sharding.rows_per_rank(num_images, world)
        for name in ('embeddings', 'valid'):
            self.register_sharded(name, num_images, *self.rows, per)
        return self.rows

    @property
    def allocated(self) -> bool:
        return self.num_images > 0

    def storage_device(self, num_images: int) -> Tuple[torch.device, bool]:
        """(device, pinned) for a cache of ``num_images`` images under this placement."""
        model_dev = self._device_probe.device
        cuda = model_dev.type == 'cuda'
        if self.placement == 'device':
            return model_dev, False
        if self.placement == 'cpu':
            return torch.device('cpu'), False
        if self.placement == 'pinned':
            return torch.device('cpu'), torch.cuda.is_available()
        big = self.device_limit is not None and num_images > self.device_limit
        if cuda and big:
            return torch.device('cpu'), True
        return model_dev, False

    @torch.no_grad()
    def allocate(self, num_images: int) -> None:
        """Allocate (or keep, if it already has this size) storage for ``num_images`` images."""
        if num_images <= 0:
            raise ValueError(f'EmbeddingCache needs at least one image, got {num_images}.')
        if self.dim is None:
            raise ValueError('EmbeddingCache dim is unknown: set model.embedding_cache.dim.')
        if self.allocated:
            if self.num_images != num_images:
                raise ValueError(
                    f'the embedding cache holds {self.num_images} images but the dataset has '
                    f'{num_images}: resume with the dataset the run started with.')
            return
        rows = self._layout(num_images)
        g = torch.Generator().manual_seed(self.seed)
        init = sharding.random_unit_rows(num_images, self.dim, keep=rows, generator=g)
        self._install(init.to(self.dtype), torch.zeros(rows[1] - rows[0], dtype=torch.bool))

    def _install(self, emb: torch.Tensor, valid: torch.Tensor) -> None:
        device, pinned = self.storage_device(emb.shape[0])
        emb, valid = emb.to(device, self.dtype), valid.to(device)
        if pinned:
            emb, valid = emb.pin_memory(), valid.pin_memory()
        self.embeddings, self.valid = emb, valid

    @property
    def nbytes(self) -> int:
        """Bytes held on this rank."""
        return self.embeddings.numel() * self.embeddings.element_size() + self.valid.numel()

    def describe(self) -> str:
        where = str(self.embeddings.device) + (' (pinned)' if self.embeddings.is_pinned() else '')
        shard = f', images {self.rows[0]}:{self.rows[1]} on this rank' if self.is_split \
            else ''
        return (f'embedding cache: {self.num_images} x {self.dim} {self.dtype} '
                f'({self.nbytes / 2**20:.1f} MiB) on {where}, placement={self.placement!r}'
                f'{shard}')

    # ------------------------------------------------------------------ access
    def _check(self) -> None:
        if not self.allocated:
            raise RuntimeError('the embedding cache is not allocated: add '
                               "dict(type='EmbeddingCacheHook') to custom_hooks.")

    @torch.no_grad()
    def update(self, sample_idx: torch.Tensor, emb: torch.Tensor) -> None:
        """Write rows ``sample_idx`` (``-1`` entries are skipped) with ``emb``."""
        self._check()
        keep = sample_idx >= 0
        if not bool(keep.all()):
            sample_idx, emb = sample_idx[keep], emb[keep]
        if sample_idx.numel() == 0:
            return
        if int(sample_idx.max()) >= self.num_images:
            raise IndexError(f'sample index {int(sample_idx.max())} outside the embedding cache '
                             f'of {self.num_images} images: the dataset changed size.')
        dev = self.embeddings.device
        idx = sample_idx.to(dev)
        emb = emb.detach().to(dev)
        if self.is_split:  # this rank's images of the (all-gathered) batch
            start, stop = self.rows
            mine = (idx >= start) & (idx < stop)
            idx, emb = idx[mine] - start, emb[mine]
        self.embeddings[idx] = emb.to(self.dtype)
        self.valid[idx] = True

    @torch.no_grad()
    def get(self, sample_idx: torch.Tensor,
            device: Optional[torch.device] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """(embeddings (B, D) float32, valid (B,)) of rows ``sample_idx``; ``-1`` -> invalid."""
        self._check()
        device = device or sample_idx.device
        ok = (sample_idx >= 0) & (sample_idx < self.num_images)
        if self.is_split:  # a collective: every rank asks for its own rows
            idx = sample_idx.clamp(0, self.num_images - 1)
            per = sharding.rows_per_rank(self.num_images, get_world_size())
            emb = sharding.fetch_rows(self.embeddings, self.rows[0], per, idx)
            valid = sharding.fetch_rows(self.valid, self.rows[0], per, idx)
            return emb.to(device, torch.float32), valid.to(device) & ok.to(device)
        idx = sample_idx.clamp(0, self.num_images - 1).to(self.embeddings.device)
        emb = self.embeddings[idx].to(device, torch.float32)
        valid = self.valid[idx].to(device) & ok.to(device)
        return emb, valid

    @torch.no_grad()
    def valid_rows(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """(dataset indices of the written rows this rank holds, their embeddings as float32),
        on the cache's device."""
        self._check()
        idx = torch.nonzero(self.valid).flatten()
        return idx + self.rows[0], self.embeddings[idx].float()

    @torch.no_grad()
    def gather_valid_rows(self, dst: int = 0
                          ) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """:meth:`valid_rows` of the whole cache on rank ``dst`` (CPU when sharded), ``(None,
        None)`` elsewhere. Call it on every rank: with a sharded cache it is a collective that
        brings each rank's images to ``dst`` (what k-means and the pseudo-labeller train on)."""
        self._check()
        if not self.is_split:
            return self.valid_rows() if get_rank() == dst else (None, None)
        per = sharding.rows_per_rank(self.num_images, get_world_size())
        emb = sharding.gather_shards(self.embeddings, self.num_images, per, dst)
        valid = sharding.gather_shards(self.valid, self.num_images, per, dst)
        if get_rank() != dst:
            return None, None
        idx = torch.nonzero(valid).flatten()
        return idx, emb[idx].float()

    @torch.no_grad()
    def coverage(self) -> float:
        """Share of the dataset's images with a cached embedding (all ranks' when sharded)."""
        self._check()
        n = self.valid.sum().reshape(1).long()
        if self.is_split:
            n = all_gather_rows(n).sum()
        return float(n) / self.num_images

    # ------------------------------------------------------------------ checkpoints
    def _save_to_state_dict(self, destination: Dict, prefix: str, keep_vars: bool) -> None:
        nn.Module._save_to_state_dict(self, destination, prefix, keep_vars)
        destination[prefix + 'embeddings'] = self.embeddings
        destination[prefix + 'valid'] = self.valid
        if self.allocated:
            self._save_sharded(destination, prefix)  # whole cache, or this rank's images

    def _load_from_state_dict(self, state_dict: Dict, prefix: str, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs) -> None:
        nn.Module._load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                                        missing_keys, unexpected_keys, error_msgs)
        ekey, vkey, mkey = prefix + 'embeddings', prefix + 'valid', prefix + SHARD_KEY
        for key in (ekey, vkey, mkey):  # not buffers, so the base class calls them unexpected
            if key in unexpected_keys:
                unexpected_keys.remove(key)
        if ekey not in state_dict or vkey not in state_dict:
            missing_keys.extend(k for k in (ekey, vkey) if k not in state_dict)
            return
        emb, valid = state_dict[ekey], state_dict[vkey]
        total = int(state_dict[mkey][2]) if mkey in state_dict else emb.shape[0]
        if self.dim is not None and emb.dim() == 2 and emb.shape[1] != self.dim:
            raise ValueError(f'checkpoint {ekey} has dim {emb.shape[1]}, the model {self.dim}: '
                             'resume with the same model.')
        if self.allocated and total != self.num_images:
            raise ValueError(f'checkpoint {ekey} covers {total} images, the dataset has '
                             f'{self.num_images}: resume with the dataset the run started with.')
        self.dim = emb.shape[1]
        was_allocated = self.allocated
        if not was_allocated:
            self._layout(total)
        local = self._reshard({ekey: emb, vkey: valid,
                               **({mkey: state_dict[mkey]} if mkey in state_dict else {})},
                              prefix)  # this rank's images (an error for a foreign shard)
        emb, valid = local[ekey], local[vkey]
        if was_allocated:
            self.embeddings.copy_(emb.to(self.embeddings.device, self.dtype))
            self.valid.copy_(valid.to(self.valid.device))
        else:
            self._install(emb, valid.bool())

    def extra_repr(self) -> str:
        return (f'dim={self.dim}, placement={self.placement!r}, dtype={self.dtype}, '
                f'images={self.num_images}')
