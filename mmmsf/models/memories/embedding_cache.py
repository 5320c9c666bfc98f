"""Per-dataset cache of the latest target embedding of every image (N x D).

CMSF needs, for every dataset image, its most recent target embedding: CMSF-KM clusters them at
each epoch end, semi-supervised CMSF trains its pseudo-labeller on those of the labelled images,
and the released code's CMSF-2Q reads an image's previous-visit embedding from it. Every rank
writes the all-gathered targets of each step, so all ranks hold the same cache.

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
import torch.nn.functional as F

from mmmsf.registry import MODELS

_DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16}
PLACEMENTS = ('auto', 'device', 'cpu', 'pinned')


@MODELS.register_module()
class EmbeddingCache(nn.Module):
    """N x D latest target embeddings with a per-image ``valid`` flag (written at least once).

    Args:
        dim: embedding dimension D (CMSF fills it in from the memory bank when omitted).
        placement: ``'auto'``, ``'device'``, ``'cpu'`` or ``'pinned'`` (module docstring).
        dtype: storage type, ``'float32'`` or ``'float16'``/``'bfloat16'`` (half the memory).
        device_limit: with ``'auto'``, caches of more than this many images leave the GPU.
        seed: seed of the random unit vectors that never-written rows start with.
    """

    def __init__(self, dim: Optional[int] = None, placement: str = 'auto',
                 dtype: str = 'float32', device_limit: Optional[int] = None, seed: int = 0):
        super().__init__()
        if placement not in PLACEMENTS:
            raise KeyError(f'EmbeddingCache placement={placement!r}: use one of {PLACEMENTS}.')
        if dtype not in _DTYPES:
            raise KeyError(f'EmbeddingCache dtype={dtype!r}: use one of {sorted(_DTYPES)}.')
        self.dim, self.placement, self.dtype = dim, placement, _DTYPES[dtype]
        self.device_limit, self.seed = device_limit, seed
        # empty marker buffer: follows model.to(), tells where the model lives
        self.register_buffer('_device_probe', torch.zeros(0), persistent=False)
        self.embeddings = torch.zeros(0, dim or 0, dtype=self.dtype)
        self.valid = torch.zeros(0, dtype=torch.bool)

    # ------------------------------------------------------------------ placement
    @property
    def num_images(self) -> int:
        return self.embeddings.shape[0]

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
        g = torch.Generator().manual_seed(self.seed)
        init = F.normalize(torch.randn(num_images, self.dim, generator=g), dim=1)
        self._install(init.to(self.dtype), torch.zeros(num_images, dtype=torch.bool))

    def _install(self, emb: torch.Tensor, valid: torch.Tensor) -> None:
        device, pinned = self.storage_device(emb.shape[0])
        emb, valid = emb.to(device, self.dtype), valid.to(device)
        if pinned:
            emb, valid = emb.pin_memory(), valid.pin_memory()
        self.embeddings, self.valid = emb, valid

    @property
    def nbytes(self) -> int:
        return self.embeddings.numel() * self.embeddings.element_size() + self.valid.numel()

    def describe(self) -> str:
        where = str(self.embeddings.device) + (' (pinned)' if self.embeddings.is_pinned() else '')
        return (f'embedding cache: {self.num_images} x {self.dim} {self.dtype} '
                f'({self.nbytes / 2**20:.1f} MiB) on {where}, placement={self.placement!r}')

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
        self.embeddings[idx] = emb.detach().to(dev, self.dtype)
        self.valid[idx] = True

    @torch.no_grad()
    def get(self, sample_idx: torch.Tensor,
            device: Optional[torch.device] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """(embeddings (B, D) float32, valid (B,)) of rows ``sample_idx``; ``-1`` -> invalid."""
        self._check()
        device = device or sample_idx.device
        ok = (sample_idx >= 0) & (sample_idx < self.num_images)
        idx = sample_idx.clamp(0, self.num_images - 1).to(self.embeddings.device)
        emb = self.embeddings[idx].to(device, torch.float32)
        valid = self.valid[idx].to(device) & ok.to(device)
        return emb, valid

    @torch.no_grad()
    def valid_rows(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """(indices of written rows, their embeddings as float32), on the cache's device."""
        self._check()
        idx = torch.nonzero(self.valid).flatten()
        return idx, self.embeddings[idx].float()

    # ------------------------------------------------------------------ checkpoints
    def _save_to_state_dict(self, destination: Dict, prefix: str, keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination[prefix + 'embeddings'] = self.embeddings
        destination[prefix + 'valid'] = self.valid

    def _load_from_state_dict(self, state_dict: Dict, prefix: str, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs) -> None:
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        ekey, vkey = prefix + 'embeddings', prefix + 'valid'
        for key in (ekey, vkey):  # not buffers, so the base class calls them unexpected
            if key in unexpected_keys:
                unexpected_keys.remove(key)
        if ekey not in state_dict or vkey not in state_dict:
            missing_keys.extend(k for k in (ekey, vkey) if k not in state_dict)
            return
        emb, valid = state_dict[ekey], state_dict[vkey]
        if self.dim is not None and emb.dim() == 2 and emb.shape[1] != self.dim:
            raise ValueError(f'checkpoint {ekey} has dim {emb.shape[1]}, the model {self.dim}: '
                             'resume with the same model.')
        if self.allocated and emb.shape[0] != self.num_images:
            raise ValueError(f'checkpoint {ekey} covers {emb.shape[0]} images, the dataset has '
                             f'{self.num_images}: resume with the dataset the run started with.')
        self.dim = emb.shape[1]
        if self.allocated:
            self.embeddings.copy_(emb.to(self.embeddings.device, self.dtype))
            self.valid.copy_(valid.to(self.valid.device))
        else:
            self._install(emb, valid.bool())

    def extra_repr(self) -> str:
        return (f'dim={self.dim}, placement={self.placement!r}, dtype={self.dtype}, '
                f'images={self.num_images}')
