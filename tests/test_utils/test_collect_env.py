"""``collect_env``: mmengine's environment report plus mmmsf's version, the CPU and faiss; on a
Python whose ``distutils`` does not import, the fields it can collect and what failed."""
import json
import os
import sys

import mmengine
import torch

import mmmsf
from mmmsf.utils.collect_env import NOT_IN_FALLBACK, collect_env
from mmmsf.utils.machine import cpu_model


def test_mmengine_fields_plus_mmmsf_cpu_and_faiss():
    info = collect_env()
    assert info['PyTorch'] == torch.__version__ and info['MMEngine'] == mmengine.__version__
    assert info['Python'].split()[0] == '%d.%d.%d' % sys.version_info[:3]
    assert info['CUDA available'] == torch.cuda.is_available()
    assert info['GCC']  # from mmengine's function, not the fallback
    assert info['mmmsf'] == mmmsf.__version__
    assert info['CPU'] == cpu_model() and info['CPU cores'] == os.cpu_count()
    assert info['faiss'] and 'collect_env' not in info
    assert 'PyTorch compiling details' not in info
    json.dumps(info)  # plain values: numpy's seed is an int here
    assert isinstance(info['numpy_random_seed'], int)
    assert 'PyTorch built with' in collect_env(True)['PyTorch compiling details']


def test_without_distutils_the_fallback_says_what_failed(monkeypatch):
    monkeypatch.setitem(sys.modules, 'distutils', None)  # Python 3.12 without the shim
    info = collect_env(with_torch_compiling_info=True)
    assert 'distutils' in info['collect_env'] and 'failed' in info['collect_env']
    assert all(field in info['collect_env'] for field in NOT_IN_FALLBACK)
    assert not set(NOT_IN_FALLBACK) & set(info)
    assert info['PyTorch'] == torch.__version__ and info['MMEngine'] == mmengine.__version__
    assert info['Python'].split()[0] == '%d.%d.%d' % sys.version_info[:3]
    assert info['mmmsf'] == mmmsf.__version__ and info['CPU'] == cpu_model()
    assert info['CUDA available'] == torch.cuda.is_available()
    json.dumps(info)
