"""CMSF's per-image embedding cache in pinned host memory next to a model on the GPU."""
import pytest
import torch
import torch.nn.functional as F

from mmmsf.models.memories import EmbeddingCache
from mmmsf.registry import MODELS
from tests.conftest import tiny_msf_cfg


@pytest.mark.cuda
@pytest.mark.parametrize('placement,limit', [('auto', 100), ('pinned', None)])
def test_cache_lives_in_pinned_host_memory_and_round_trips(placement, limit):
    cache = EmbeddingCache(dim=16, placement=placement, device_limit=limit).cuda()
    cache.allocate(1000)
    assert cache.embeddings.device.type == 'cpu' and cache.embeddings.is_pinned()
    assert cache.valid.is_pinned() and '(pinned)' in cache.describe()
    g = torch.Generator().manual_seed(0)
    emb = F.normalize(torch.randn(64, 16, generator=g), dim=1).cuda()
    idx = torch.randperm(1000, generator=g)[:64].cuda()
    cache.update(idx, emb)  # GPU rows into pinned host memory
    assert cache.embeddings.is_pinned()  # written in place, still pinned
    got, valid = cache.get(idx)
    assert got.device.type == 'cuda' and bool(valid.all())
    assert torch.equal(got, emb)
    rows, stored = cache.valid_rows()
    assert sorted(rows.tolist()) == sorted(idx.tolist())


@pytest.mark.cuda
def test_small_cache_stays_on_the_gpu_and_cmsf_moves_a_large_one_to_pinned_memory():
    small = EmbeddingCache(dim=16, device_limit=100).cuda()
    small.allocate(50)
    assert small.embeddings.is_cuda
    cfg = tiny_msf_cfg(size=256, dim=32, width=8)
    cfg.update(type='CMSF', constrained_selector=dict(type='KMeansSelector'),
               embedding_cache=dict(type='EmbeddingCache'), rank_stats=False)
    model = MODELS.build(cfg).cuda()
    model.embedding_cache.allocate(5000)  # more images than bank slots: off the GPU
    assert model.embedding_cache.embeddings.is_pinned()
