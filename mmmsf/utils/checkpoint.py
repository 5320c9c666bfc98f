"""Safe loading of mmengine checkpoints under torch's ``weights_only=True`` default.

mmengine 0.10.7 saves its message hub (``HistoryBuffer`` objects holding NumPy arrays) and
NumPy scalars in checkpoint metadata; torch >= 2.6 refuses them unless allow-listed. We add
exactly those types to torch's safe globals -- never ``weights_only=False``.
"""
from typing import List

import numpy as np
import torch


def _mmengine_checkpoint_types() -> List:
    from mmengine.logging.history_buffer import HistoryBuffer
    types = [HistoryBuffer, np.ndarray, np.dtype, np.core.multiarray._reconstruct
             if hasattr(np, 'core') else None, np.core.multiarray.scalar]
    # NumPy >= 1.25 pickles dtypes as np.dtypes.<Name>DType classes.
    for name in ('Float64DType', 'Float32DType', 'Float16DType', 'Int64DType', 'Int32DType',
                 'UInt8DType', 'BoolDType', 'StrDType'):
        if hasattr(np, 'dtypes') and hasattr(np.dtypes, name):
            types.append(getattr(np.dtypes, name))
    return [t for t in types if t is not None]


_DONE = False


def allow_mmengine_checkpoints() -> None:
    """Allow-list the types mmengine writes into checkpoints (idempotent)."""
    global _DONE
    if _DONE:
        return
    torch.serialization.add_safe_globals(_mmengine_checkpoint_types())
    _DONE = True
