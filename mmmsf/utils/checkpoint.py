"""Reading checkpoints: the one safe reader (:func:`safe_load`, :func:`read_checkpoint`), the
weights-only loader installed into mmengine, the backbone-prefix selector with hints for
layouts that need a conversion first (:func:`select_prefix`), and the checks before a run
loads one (:func:`latest_checkpoint`, :func:`check_checkpoint_file`,
:func:`check_checkpoint_fits`).

Every checkpoint mmmsf reads -- its own tools and mmengine's ``load_from`` / ``resume`` /
``load_checkpoint`` / ``init_cfg=dict(type='Pretrained')``, mmdet's initialisation included --
goes through :func:`safe_load`: ``torch.load(..., weights_only=True)``, never the full
unpickler. :func:`install_weights_only_loader` replaces every scheme of mmengine's
``CheckpointLoader`` (whose local loader calls ``torch.load`` without ``weights_only``, and
whose URL loader passes ``weights_only=False``). ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` (set to get
past old mmengine errors under torch >= 2.6) would turn the full unpickler back on for any
``torch.load`` that does not say ``weights_only``; mmmsf refuses to load anything while it is set.

Safe loading of mmengine checkpoints under ``weights_only=True``:

mmengine 0.10.7 saves its message hub (``HistoryBuffer`` objects holding NumPy arrays) and
NumPy scalars in checkpoint metadata; torch >= 2.6 refuses them unless allow-listed. We add
exactly those types to torch's safe globals -- never ``weights_only=False``.

``HistoryBuffer.__getstate__`` also pickles its table of statistics *functions*, which needs
the ``getattr`` global; allowing ``getattr`` would open the unpickler to attribute lookups on
any allowed object, so instead mmmsf saves buffers without that table (``__setstate__``
rebuilds the default methods; custom ones are class-level and re-registered on import).
"""
import argparse
import os
import os.path as osp
import pickle
import re
import zipfile
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import urlparse

import numpy as np
import torch

from mmmsf.utils.sharded_state import SHARD_KEY, split_modules

UNSAFE_ENV = 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'
_TRUE = ('1', 'y', 'yes', 'true')  # the values torch.load reads as set


def _mmengine_checkpoint_types() -> List:
    from mmengine.logging.history_buffer import HistoryBuffer
    multiarray = np._core.multiarray  # numpy >= 2
    types: List = [HistoryBuffer, np.ndarray, np.dtype, multiarray._reconstruct,
                   multiarray.scalar,
                   # checkpoints written under numpy 1.x name the same functions numpy.core.*
                   (multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
                   (multiarray.scalar, 'numpy.core.multiarray.scalar')]
    # NumPy pickles dtypes as np.dtypes.<Name>DType classes.
    for name in ('Float64DType', 'Float32DType', 'Float16DType', 'Int64DType', 'Int32DType',
                 'UInt8DType', 'BoolDType', 'StrDType'):
        types.append(getattr(np.dtypes, name))
    return types


_DONE = False


def allow_mmengine_checkpoints() -> None:
    """Allow-list the types mmengine writes into checkpoints and make mmengine load weights-only
    (idempotent; run when mmmsf is imported)."""
    global _DONE
    if _DONE:
        return
    torch.serialization.add_safe_globals(_mmengine_checkpoint_types())
    from mmengine.logging.history_buffer import HistoryBuffer

    def _getstate_without_methods(self) -> dict:
        state = dict(self.__dict__)
        state.pop('statistics_methods', None)
        return state

    HistoryBuffer.__getstate__ = _getstate_without_methods
    install_weights_only_loader()
    _DONE = True


def refuse_unsafe_loading() -> None:
    """One clear error while ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` is set."""
    value = os.environ.get(UNSAFE_ENV, '0')
    if value.strip().lower() in _TRUE:
        raise RuntimeError(
            f'{UNSAFE_ENV}={value} is set: it makes torch.load run the code a checkpoint file '
            'may carry. mmmsf reads every checkpoint weights-only and allow-lists the types '
            f"mmengine writes, so its checkpoints load without it: unset it (unset {UNSAFE_ENV}) "
            'and run again.')


def safe_load(path: str, map_location: Any = 'cpu', mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)``: the only way mmmsf opens a checkpoint file.

    Errors, each one line naming the file: missing file; a file weights-only loading refuses
    (a pickled object beyond tensors and mmengine's metadata: nothing of it runs); a truncated
    or non-torch file; ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` set. ``mmap`` reads zip checkpoints
    memory-mapped (a legacy, non-zip file is read whole).
    """
    refuse_unsafe_loading()
    path = osp.expanduser(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist.')
    allow_mmengine_checkpoints()
    mmap = mmap and zipfile.is_zipfile(path)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        if 'Weights only load failed' in str(e) and 'Unsupported operand' not in str(e):
            found = re.search(r'GLOBAL (\S+)', str(e))
            what = f'the Python object {found.group(1)}' if found else 'a Python object'
            raise ValueError(
                f'checkpoint {path!r} holds {what}, which weights-only loading refuses (it could '
                'run code; nothing of it was run). mmmsf reads tensors, mmengine metadata and '
                'plain values only: if you trust the file, save its tensors again '
                '(torch.save(dict(state_dict=...))) in a session of your own.') from None
        raise _unreadable(path, e) from None
    except Exception as e:  # noqa: BLE001 -- any other failure: truncated or not torch
        raise _unreadable(path, e) from None


def _unreadable(path: str, e: Exception) -> ValueError:
    first = (str(e).strip().splitlines() or [''])[0][:200]
    return ValueError(f'checkpoint {path!r} ({osp.getsize(path)} bytes) is not a readable '
                      'PyTorch checkpoint: truncated (copy it again) or not a torch file '
                      f'({type(e).__name__}: {first}).')


def load_from_weights_only(filename: str, map_location: Any = None) -> Any:
    """mmengine's ``CheckpointLoader`` scheme for local files, weights-only."""
    return safe_load(filename, map_location)


def load_from_url_weights_only(url: str, map_location: Any = None) -> Any:
    """http(s) checkpoints: downloaded once into torch's hub cache (by local rank 0), then read
    weights-only (torch's own URL loader unpickles them in full)."""
    from mmengine.dist import barrier, get_local_rank, get_world_size
    from torch.hub import download_url_to_file, get_dir
    refuse_unsafe_loading()
    cached = osp.join(get_dir(), 'checkpoints', osp.basename(urlparse(url).path))
    if get_local_rank() == 0 and not osp.isfile(cached):
        os.makedirs(osp.dirname(cached), exist_ok=True)
        download_url_to_file(url, cached, progress=False)
    if get_world_size() > 1:
        barrier()
    return safe_load(cached, map_location)


def load_from_torchvision_weights_only(filename: str, map_location: Any = None) -> Any:
    """``torchvision://NAME`` (and the older ``modelzoo://NAME``): torchvision's URL, read
    weights-only."""
    from mmengine.runner.checkpoint import get_torchvision_models
    name = filename.split('://', 1)[1]
    urls = get_torchvision_models()
    if name not in urls:
        raise KeyError(f'{filename}: torchvision has no model {name!r}.')
    return load_from_url_weights_only(urls[name], map_location)


def load_from_unsupported_scheme(filename: str, map_location: Any = None) -> Any:
    """Every other mmengine scheme (pavi, s3, open-mmlab, ...): refused, never unpickled."""
    raise ValueError(f'{filename}: mmmsf reads checkpoints weights-only from local files, '
                     'http(s) URLs and torchvision:// names; download this one and give its '
                     'path.')


def install_weights_only_loader() -> None:
    """Replace every scheme of mmengine's ``CheckpointLoader`` by a weights-only one
    (idempotent; schemes registered later are replaced by the next call)."""
    from mmengine.runner.checkpoint import CheckpointLoader
    loaders: Dict[str, Callable] = {'': load_from_weights_only,
                                    'http://': load_from_url_weights_only,
                                    'https://': load_from_url_weights_only,
                                    'torchvision://': load_from_torchvision_weights_only,
                                    'modelzoo://': load_from_torchvision_weights_only}
    for prefix in list(CheckpointLoader._schemes) + list(loaders):
        CheckpointLoader.register_scheme(
            prefix, loaders.get(prefix, load_from_unsupported_scheme), force=True)


def read_checkpoint(path: str) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """The state dict (tensors, ``module.`` removed) and the ``meta`` dict of a checkpoint.

    Reads mmengine checkpoints (``state_dict`` + ``meta``), bare state dicts and the authors'
    checkpoints (their ``argparse.Namespace`` options are allowed so that the layout can be
    recognised and sent to the converter), always with torch's safe loading.
    """
    ckpt = safe_load(path)
    if not isinstance(ckpt, dict):
        raise ValueError(f'{path} holds a {type(ckpt).__name__}, not a state dict.')
    state = ckpt.get('state_dict', ckpt)
    meta = ckpt.get('meta', {}) if isinstance(ckpt.get('meta'), dict) else {}
    if not isinstance(state, dict):
        raise ValueError(f'{path} holds no state dict.')
    tensors = OrderedDict((k[len('module.'):] if k.startswith('module.') else k, v)
                          for k, v in state.items() if isinstance(v, torch.Tensor))
    if not tensors:
        raise ValueError(f'{path} holds no tensors.')
    return tensors, meta


def load_state_dict(path: str) -> 'OrderedDict[str, torch.Tensor]':
    """The model state dict of a checkpoint (:func:`read_checkpoint` without the meta)."""
    return read_checkpoint(path)[0]


# Prefixes of checkpoints mmmsf cannot load as they are (they need tools/model_converters).
FOREIGN_PREFIXES = {
    'encoder_q.module.': "the authors' MSF/CMSF layout: convert it with "
                         'tools/model_converters/authors_to_mmmsf.py',
    'encoder_q.': "an authors'-style checkpoint: convert it with "
                  'tools/model_converters/authors_to_mmmsf.py',
}


def select_prefix(state: Dict[str, torch.Tensor], prefix: str,
                  source: str = 'checkpoint') -> 'OrderedDict[str, torch.Tensor]':
    """The tensors under ``prefix`` with the prefix removed; ``''`` keeps every key except a
    classifier ``fc.*`` (a torchvision state dict)."""
    if prefix:
        out = OrderedDict((k[len(prefix):], v) for k, v in state.items() if k.startswith(prefix))
    else:
        out = OrderedDict((k, v) for k, v in state.items() if not k.startswith('fc.'))
    if not out:
        for p, hint in FOREIGN_PREFIXES.items():
            if any(k.startswith(p) for k in state):
                raise KeyError(f'{source} has no {prefix!r} keys; it is {hint}.')
        some = ', '.join(list(state)[:4])
        raise KeyError(f'{source} has no keys starting with {prefix!r} (it has e.g. {some}): '
                       "set the backbone prefix ('backbone.' for mmmsf checkpoints, '' for a "
                       'torchvision/extracted backbone).')
    return out


def latest_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint named by ``work_dir/last_checkpoint`` (mmengine's record), if it exists
    (a relative name not found as it is is read relative to ``work_dir``); else None."""
    record = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(record):
        return None
    with open(record) as f:
        path = f.read().strip()
    if path and not osp.isabs(path) and not osp.isfile(path):
        path = osp.join(work_dir, path)
    return path if path and osp.isfile(path) else None


def check_checkpoint_file(path: str) -> None:
    """One clear error for a checkpoint that is missing, truncated or not a torch file.

    torch writes a zip archive whose directory is at its end, so a truncated file has none;
    opening the directory reads no tensor data."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist.')
    try:
        with zipfile.ZipFile(path) as z:
            if not any(n.endswith('data.pkl') for n in z.namelist()):
                raise zipfile.BadZipFile('no data.pkl')
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f'checkpoint {path!r} ({osp.getsize(path)} bytes) is truncated or '
                         f'not a torch checkpoint ({e}): copy it again, or resume from an '
                         'earlier checkpoint.') from None


def state_mismatch(expected: Dict[str, Optional[Tuple[int, ...]]],
                   state: Dict[str, Any]) -> Tuple[List[str], List[str], List[str]]:
    """How a checkpoint's ``state`` differs from the ``expected`` shapes of a model's state:
    ``(differ, missing, unexpected)`` -- ``'key: checkpoint (a, b) vs model (c, d)'`` lines,
    keys the checkpoint lacks, keys the model lacks. An expected shape None takes any shape."""
    differ = [f'{k}: checkpoint {tuple(v.shape)} vs model {expected[k]}'
              for k, v in state.items()
              if k in expected and expected[k] is not None and hasattr(v, 'shape')
              and tuple(v.shape) != tuple(expected[k])]
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    return differ, missing, unexpected


def check_checkpoint_fits(model: torch.nn.Module, path: str, max_listed: int = 5,
                          resume: bool = True) -> None:
    """Raise one ``ValueError`` naming the tensors of checkpoint ``path`` whose shapes differ
    from ``model``'s, and the missing / unexpected keys (a checkpoint of another width or
    depth). Reads the tensors weights-only and memory-mapped: no data is loaded. ``resume``
    False: the check of ``load_from``, whose advice is to pick the matching config or to load
    only the backbone."""
    if '://' in path:  # a URL: mmengine's scheme, which mmmsf made weights-only
        from mmengine.runner.checkpoint import CheckpointLoader
        ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    else:
        ckpt = safe_load(path, mmap=True)
    state: Dict[str, torch.Tensor] = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) \
        else {}
    # per-image buffers (embedding cache, cluster ids, ...) are allocated by hooks before the
    # run: an empty model tensor takes any shape
    mine: Dict[str, Optional[Tuple[int, ...]]] = {
        k: tuple(v.shape) if v.numel() > 0 else None for k, v in model.state_dict().items()}
    # a sharded table holds this rank's rows; checkpoints hold it whole (its global shape)
    for mod_name, mod in split_modules(model):
        prefix = mod_name + '.' if mod_name else ''
        mine.pop(prefix + SHARD_KEY, None)
        for name, shape in mod.checkpoint_shapes().items():
            if mine[prefix + name] is not None:
                mine[prefix + name] = tuple(shape)
    differ, missing, unexpected = state_mismatch(mine, state)
    if not (differ or missing or unexpected):
        return
    parts = []
    if differ:
        parts.append(f'{len(differ)} tensor(s) of other shapes ('
                     + '; '.join(differ[:max_listed])
                     + (f'; and {len(differ) - max_listed} more' if len(differ) > max_listed
                        else '') + ')')
    for what, keys in (('missing from the checkpoint', missing),
                       ('not in the model', unexpected)):
        if keys:
            parts.append(f'{len(keys)} key(s) {what} ({", ".join(keys[:max_listed])}'
                         + (', ...' if len(keys) > max_listed else '') + ')')
    advice = ('Resume with the config the checkpoint was trained with.' if resume else
              'load_from loads the whole model: use the config the checkpoint was trained '
              'with (kNN, linear and transfer evaluation read only its backbone).')
    raise ValueError(f'checkpoint {path!r} does not fit this model: ' + '; '.join(parts)
                     + '. ' + advice)
