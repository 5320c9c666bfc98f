"""Frozen-backbone features of a whole dataset, in dataset order, across ranks, cached on disk.

Used by the kNN evaluation, the linear probe's statistics and pre-computed-feature mode, the
transfer evaluation and the figure snapshots. In a multi-process run each rank extracts its
shard (the dataloader's sampler) and the features are gathered and put back in dataset order
by each sample's ``sample_idx``, so the result does not depend on the number of processes.

A cache file remembers a fingerprint of the backbone weights and of the image list; a cache
made with other weights or images is recomputed, never silently reused.
"""
import hashlib
import os
import os.path as osp
import zipfile
import zlib
from typing import Callable, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dist import barrier, get_rank, get_world_size
from mmengine.logging import MMLogger

from mmmsf.utils.dist_utils import all_gather_rows


def module_fingerprint(module: torch.nn.Module) -> str:
    """SHA-1 of every tensor (names, shapes, values) of ``module``'s state dict."""
    h = hashlib.sha1()
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def dataset_fingerprint(dataset) -> str:
    """SHA-1 of a dataset's image list and pipeline (or its length when it has neither)."""
    if isinstance(getattr(dataset, 'fingerprint', None), str):
        return dataset.fingerprint  # e.g. a FeatureDataset: the identity of its feature file
    h = hashlib.sha1(str(len(dataset)).encode())
    if hasattr(dataset, 'get_data_info'):
        for i in range(len(dataset)):
            info = dataset.get_data_info(i)
            h.update(f"{info.get('img_path', '')}|{info.get('gt_label', '')}\n".encode())
    for t in getattr(getattr(dataset, 'pipeline', None), 'transforms', []):
        h.update(stable_repr(t).encode())
    return h.hexdigest()


def stable_repr(obj, depth: int = 3) -> str:
    """A description of a transform (class and settings) free of memory addresses."""
    if isinstance(obj, (int, float, str, bool, type(None))):
        return repr(obj)
    if isinstance(obj, (list, tuple)):
        return '[' + ','.join(stable_repr(o, depth) for o in obj) + ']'
    if isinstance(obj, dict):
        return '{' + ','.join(f'{k}:{stable_repr(v, depth)}' for k, v in sorted(
            obj.items(), key=lambda kv: str(kv[0]))) + '}'
    if depth <= 0 or not hasattr(obj, '__dict__'):
        return type(obj).__name__
    return type(obj).__name__ + stable_repr(
        {k: v for k, v in vars(obj).items() if not k.startswith('_')}, depth - 1)


def check_equal_sizes(batch: dict) -> None:
    """Raise one ``ValueError`` naming the image whose size differs from the batch's first
    (an evaluation pipeline without resize and crop, on images of several sizes)."""
    inputs = batch.get('inputs') if isinstance(batch, dict) else None
    if not isinstance(inputs, (list, tuple)) or not inputs or not torch.is_tensor(inputs[0]):
        return
    shape = tuple(inputs[0].shape)
    for i, x in enumerate(inputs):
        if torch.is_tensor(x) and tuple(x.shape) != shape:
            samples = batch.get('data_samples') or []

            def path(j):
                return samples[j].metainfo.get('img_path', f'sample {j}') \
                    if j < len(samples) else f'sample {j}'
            raise ValueError(
                f'image {path(i)!r} is {tuple(x.shape)[1:]} (H, W) after the evaluation pipeline, '
                f'{path(0)!r} is {shape[1:]}: give the evaluation pipeline a resize and crop to '
                "one size, e.g. dict(type='Resize', scale=(1 << 20, 256), keep_ratio=True), "
                "dict(type='CenterCrop', crop_size=224).")


@torch.no_grad()
def embed_batch(model, batch: dict, normalize: bool = True,
                feature_fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features (B, D) on the CPU, labels (B, ) and dataset indices (B, ) (``-1`` where unknown)
    of one dataloader batch; the model must already be in eval mode.

    The one place where images become kNN / probe features: :func:`extract_features`, the
    online kNN validation (:class:`~mmmsf.engine.runner.KNNValLoop`) and the figure snapshots
    (:class:`~mmmsf.engine.hooks.NeighbourSnapshotHook`, whose ``feature_fn`` is the model's
    ``embed``) all call it.
    """
    data = model.data_preprocessor(batch, False)
    x = data['inputs']
    x = x[0] if isinstance(x, (list, tuple)) and x and x[0].dim() == 4 else x
    f = feature_fn(x) if feature_fn is not None else model.extract_feat(x)
    f = f.float()
    f = (F.normalize(f, dim=1) if normalize else f).cpu()
    samples = data['data_samples'] or []
    labels = torch.tensor([int(ds.gt_label) if 'gt_label' in ds else -1 for ds in samples],
                          dtype=torch.long)
    indices = torch.tensor([int(ds.metainfo.get('sample_idx', -1)) for ds in samples],
                           dtype=torch.long)
    return f, labels, indices


@torch.no_grad()
def read_feature_cache(path: str) -> Optional[dict]:
    """The ``fingerprint`` (str), ``feats`` and ``labels`` of cache file ``path``, all read
    now; ``None`` when the file cannot be read whole (a truncated copy, another kind of file)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            out = dict(fingerprint=str(data['fingerprint']), feats=data['feats'],
                       labels=data['labels'])
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, KeyError, ValueError):
        return None
    if out['feats'].ndim != 2 or out['labels'].shape != out['feats'].shape[:1]:
        return None
    return out


def extract_features(model, dataloader, device: Optional[torch.device] = None,
                     cache_file: Optional[str] = None, normalize: bool = True,
                     feature_fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                     fingerprint: Optional[str] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Features (N, D) and labels (N, ) (``-1`` where unknown) of every image of the dataset.

    Args:
        model: has ``data_preprocessor`` and ``extract_feat`` (MSF, LinearProbe), or give
            ``feature_fn`` (inputs -> features).
        dataloader: an mmengine dataloader over the dataset (test pipeline, no shuffling).
        cache_file: ``.npz`` path; reused if its fingerprint matches, else (re)written.
        normalize: L2-normalise the features (kNN: yes; linear-probe statistics: yes).
        fingerprint: identity of the weights/data for the cache (default: backbone weights +
            image list + pipeline).
    """
    logger = MMLogger.get_current_instance()
    if cache_file:
        if fingerprint is None:
            net = getattr(model, 'backbone', None)
            net = model if net is None else net
            fingerprint = module_fingerprint(net) + dataset_fingerprint(dataloader.dataset)
        fingerprint = f'{fingerprint}|normalize={normalize}'
        if osp.isfile(cache_file):
            data = read_feature_cache(cache_file)
            if data is None:
                logger.warning(f'feature cache {cache_file} is unreadable (truncated or not a '
                               'feature cache): recomputing it.')
            elif data['fingerprint'] == fingerprint:
                return torch.from_numpy(data['feats']), torch.from_numpy(data['labels'])
            else:
                logger.info(f'{cache_file} was computed with other weights or images: '
                            'recomputing.')
    was_training = model.training
    model.eval()
    if device is not None:
        model.to(device)
    feats, labels, indices = [], [], []
    for batch in dataloader:
        check_equal_sizes(batch)
        f, y, i = embed_batch(model, batch, normalize, feature_fn)
        feats.append(f)
        labels.append(y)
        indices.append(i)
    model.train(was_training)
    feats_t, labels_t, idx_t = torch.cat(feats), torch.cat(labels), torch.cat(indices)
    if get_world_size() > 1:
        feats_t, labels_t, idx_t = (all_gather_rows(t, same_rows=False)
                                   for t in (feats_t, labels_t, idx_t))
    if bool((idx_t >= 0).all()):
        # dataset order; samples repeated by a padding sampler are kept once
        order = torch.argsort(idx_t, stable=True)
        idx_sorted = idx_t[order]
        keep = torch.ones_like(idx_sorted, dtype=torch.bool)
        keep[1:] = idx_sorted[1:] != idx_sorted[:-1]
        feats_t, labels_t = feats_t[order][keep], labels_t[order][keep]
        n = len(dataloader.dataset)
        if len(feats_t) != n:
            raise RuntimeError(f'feature extraction saw {len(feats_t)} of {n} images: the '
                               'sampler must cover the dataset (use DefaultSampler, no drop_last).')
    if cache_file:
        if get_rank() == 0:
            os.makedirs(osp.dirname(osp.abspath(cache_file)), exist_ok=True)
            tmp = cache_file + '.tmp.npz'
            np.savez(tmp, feats=feats_t.numpy(), labels=labels_t.numpy(),
                     fingerprint=np.array(fingerprint))
            os.replace(tmp, cache_file)
        barrier()
    return feats_t, labels_t
