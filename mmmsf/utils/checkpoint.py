"""Reading checkpoints: the one safe reader (:func:`read_checkpoint`) and the backbone-prefix
selector with hints for layouts that need a conversion first (:func:`select_prefix`).

Safe loading of mmengine checkpoints under torch's ``weights_only=True`` default:

mmengine 0.10.7 saves its message hub (``HistoryBuffer`` objects holding NumPy arrays) and
NumPy scalars in checkpoint metadata; torch >= 2.6 refuses them unless allow-listed. We add
exactly those types to torch's safe globals -- never ``weights_only=False``.

``HistoryBuffer.__getstate__`` also pickles its table of statistics *functions*, which needs
the ``getattr`` global; allowing ``getattr`` would open the unpickler to attribute lookups on
any allowed object, so instead mmmsf saves buffers without that table (``__setstate__``
rebuilds the default methods; custom ones are class-level and re-registered on import).
"""
import argparse
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Tuple

import numpy as np
import torch


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
    """Allow-list the types mmengine writes into checkpoints (idempotent)."""
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
    _DONE = True


def read_checkpoint(path: str) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """The state dict (tensors, ``module.`` removed) and the ``meta`` dict of a checkpoint.

    Reads mmengine checkpoints (``state_dict`` + ``meta``), bare state dicts and the authors'
    checkpoints (their ``argparse.Namespace`` options are allowed so that the layout can be
    recognised and sent to the converter), always with torch's safe loading.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist.')
    allow_mmengine_checkpoints()
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001 -- any unpickling failure gets the same advice
        raise ValueError(f'{path} is not a readable PyTorch checkpoint ({type(e).__name__}: '
                         f'{str(e)[:200]}).') from e
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
