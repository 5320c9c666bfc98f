"""The per-image embedding cache: writes, reads, validity, placement, size report, errors."""
import pytest
import torch
import torch.nn.functional as F

from mmmsf.models.memories import EmbeddingCache


def test_update_get_and_validity():
    cache = EmbeddingCache(dim=4, placement='cpu')
    with pytest.raises(RuntimeError, match='EmbeddingCacheHook'):
        cache.get(torch.tensor([0]))
    cache.allocate(10)
    assert cache.num_images == 10 and not cache.valid.any()
    emb = F.normalize(torch.randn(3, 4), dim=1)
    cache.update(torch.tensor([2, -1, 7]), emb)  # -1: no image, skipped
    got, valid = cache.get(torch.tensor([2, 7, 3, -1]))
    assert valid.tolist() == [True, True, False, False]
    assert torch.allclose(got[0], emb[0]) and torch.allclose(got[1], emb[2])
    rows, vecs = cache.valid_rows()
    assert rows.tolist() == [2, 7] and torch.allclose(vecs[1], emb[2])
    with pytest.raises(IndexError, match='dataset changed size'):
        cache.update(torch.tensor([10]), emb[:1])
    cache.allocate(10)  # same size: kept
    assert cache.valid.sum() == 2
    with pytest.raises(ValueError, match='dataset has 11'):
        cache.allocate(11)


def test_placement_and_size_report():
    cache = EmbeddingCache(dim=8, placement='auto', device_limit=100, dtype='float16')
    cache.allocate(1000)
    # CPU model: 'auto' keeps it with the model (pinned CPU memory is for GPU runs)
    assert cache.embeddings.device.type == 'cpu' and cache.embeddings.dtype == torch.float16
    assert cache.storage_device(1000)[1] is False
    text = cache.describe()
    assert '1000 x 8' in text and 'float16' in text and 'MiB' in text
    assert cache.nbytes == 1000 * 8 * 2 + 1000
    cache.to(torch.float64)  # model casts/moves do not touch the storage
    assert cache.embeddings.dtype == torch.float16
    with pytest.raises(KeyError, match='placement'):
        EmbeddingCache(dim=8, placement='gpu0')
