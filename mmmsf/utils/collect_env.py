"""The environment a run or a measurement used: mmengine's ``collect_env`` plus mmmsf's
version, the CPU and faiss (as mmpretrain builds its own on mmengine's)."""
import importlib
import os
import sys
from collections import defaultdict
from typing import Dict, Optional

import mmengine
import torch
from mmengine.utils.dl_utils import collect_env as collect_base_env

from mmmsf import __version__
from .machine import cpu_model

# what mmengine's collect_env reports (where they apply) that the fallback cannot
NOT_IN_FALLBACK = ('GCC', 'CUDA_HOME', 'NVCC', 'PyTorch compiling details')


def module_version(name: str) -> Optional[str]:
    """``name.__version__``, or None where the module does not import."""
    try:
        return importlib.import_module(name).__version__
    except ImportError:
        return None


def _fallback_env() -> Dict:
    """The fields of mmengine's ``collect_env`` that need nothing but torch: the versions,
    ``CUDA available`` and the GPUs by name (``GPU 0,1: NAME``)."""
    info = {'sys.platform': sys.platform, 'Python': sys.version.replace('\n', ''),
            'CUDA available': torch.cuda.is_available()}
    devices = defaultdict(list)
    for k in range(torch.cuda.device_count() if info['CUDA available'] else 0):
        devices[torch.cuda.get_device_name(k)].append(str(k))
    for name, ids in devices.items():
        info['GPU ' + ','.join(ids)] = name
    info['PyTorch'] = torch.__version__
    for key, module in (('TorchVision', 'torchvision'), ('OpenCV', 'cv2')):
        version = module_version(module)
        if version is not None:  # left out when absent, as mmengine does
            info[key] = version
    info['MMEngine'] = mmengine.__version__
    return info


def collect_env(with_torch_compiling_info: bool = False) -> Dict:
    """mmengine's ``collect_env`` (Python, CUDA, GPUs, NVCC, GCC, PyTorch, TorchVision,
    OpenCV, MMEngine) plus ``mmmsf``, ``CPU``, ``CPU cores`` and ``faiss``.

    Where mmengine's function cannot import what it needs (``distutils``, gone from Python
    3.12 unless setuptools' shim serves it), the fields that need only torch are collected
    here and ``collect_env`` says what failed and which fields are missing.
    ``with_torch_compiling_info`` keeps ``torch.__config__.show()`` (many lines). The values
    are plain Python (JSON-serialisable).
    """
    try:
        info = dict(collect_base_env())
    except ImportError as e:
        info = _fallback_env()
        info['collect_env'] = (f'mmengine collect_env failed ({type(e).__name__}: {e}); '
                               f'not collected: {", ".join(NOT_IN_FALLBACK)}')
    if not with_torch_compiling_info:
        info.pop('PyTorch compiling details', None)
    info.update({'mmmsf': __version__, 'CPU': cpu_model(), 'CPU cores': os.cpu_count(),
                 'faiss': module_version('faiss') or 'not installed'})
    # plain Python values (numpy_random_seed is a numpy integer), so the dict is JSON
    return {k: v.item() if hasattr(v, 'item') else v for k, v in info.items()}
