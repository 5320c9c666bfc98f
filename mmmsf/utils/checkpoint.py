"""Safe loading of mmengine checkpoints under torch's ``weights_only=True`` default.

mmengine 0.10.7 saves its message hub (``HistoryBuffer`` objects holding NumPy arrays) and
NumPy scalars in checkpoint metadata; torch >= 2.6 refuses them unless allow-listed. We add
exactly those types to torch's safe globals -- never ``weights_only=False``.

``HistoryBuffer.__getstate__`` also pickles its table of statistics *functions*, which needs
the ``getattr`` global; allowing ``getattr`` would open the unpickler to attribute lookups on
any allowed object, so instead mmmsf saves buffers without that table (``__setstate__``
rebuilds the default methods; custom ones are class-level and re-registered on import).
"""
from typing import List

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
