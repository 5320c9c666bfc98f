"""The single-process parts of the sharding helpers (the collectives are tested with real gloo
ranks in tests/test_models/test_memories/test_sharded_bank.py)."""
import pytest
import torch
import torch.nn.functional as F

from mmmsf.utils.sharding import (ceil_shard, check_divisible, equal_shard, random_unit_rows,
                                  sharded_topk)
from mmmsf.utils.knn_search import chunked_topk
from mmmsf.utils.slot_mask import SlotMask


@pytest.mark.parametrize('rows,dim,chunk', [(96, 8, 32), (100, 16, 16), (37, 8, 16),
                                            (5, 3, 16), (1000, 5, 48)])
def test_random_unit_rows_are_the_rows_of_one_randn(rows, dim, chunk):
    torch.manual_seed(3)
    whole = F.normalize(torch.randn(rows, dim), dim=1)
    after = torch.rand(4)
    torch.manual_seed(3)
    part = random_unit_rows(rows, dim, keep=(rows // 3, rows - 1), chunk_rows=chunk)
    assert torch.equal(part, whole[rows // 3:rows - 1])
    assert torch.equal(torch.rand(4), after)  # the random stream continues identically
    g = torch.Generator().manual_seed(5)
    expect = F.normalize(torch.randn(rows, dim, generator=torch.Generator().manual_seed(5)), dim=1)
    assert torch.equal(random_unit_rows(rows, dim, generator=g, chunk_rows=chunk), expect)


def test_layouts():
    assert [equal_shard(12, r, 3) for r in range(3)] == [(0, 4), (4, 8), (8, 12)]
    assert [ceil_shard(10, r, 4) for r in range(4)] == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert ceil_shard(2, 3, 4) == (2, 2)  # more ranks than rows: an empty shard
    with pytest.raises(ValueError, match='multiple of the world size 5'):
        check_divisible(12, 5)


def test_sharded_topk_in_one_process_is_the_local_search():
    keys = F.normalize(torch.randn(20, 4), dim=1)
    q = keys[:3].clone()
    mask = SlotMask.dense(torch.rand(3, 20) > 0.3)
    got = sharded_topk(q, 4, lambda qq, k, m: chunked_topk(qq, keys, k, 7, m), (0, 20), 20,
                       mask)
    ref = chunked_topk(q, keys, 4, 7, mask)
    assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])
