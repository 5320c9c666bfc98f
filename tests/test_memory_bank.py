import pytest
import torch
import torch.nn.functional as F

from mmmsf.models.memories import NNMemoryBank, chunked_topk


def unit(n, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g), dim=1)


def test_fifo_order_and_pointer_wraparound():
    bank = NNMemoryBank(size=12, dim=4)
    batches = [unit(4, 4, s) for s in range(4)]  # 16 rows into 12 slots
    for i, b in enumerate(batches):
        slots = bank.enqueue(b, labels=torch.full((4, ), i), sample_idx=torch.arange(4) + 4 * i)
        assert slots.tolist() == list(range((4 * i) % 12, (4 * i) % 12 + 4))
    assert int(bank.ptr) == 4  # 16 % 12
    # slots 0-3 were overwritten by the 4th batch, 4-11 still hold batches 2 and 3
    assert torch.equal(bank.bank[0:4], batches[3])
    assert torch.equal(bank.bank[4:8], batches[1])
    assert torch.equal(bank.bank[8:12], batches[2])
    assert bank.labels.tolist() == [3] * 4 + [1] * 4 + [2] * 4
    assert bank.sample_idx[:4].tolist() == [12, 13, 14, 15]
    assert bank.fill == 1.0 and int(bank.num_written) == 16


def test_self_is_first_neighbour():
    bank = NNMemoryBank(size=256, dim=8)
    for s in range(3):
        bank.enqueue(unit(32, 8, s))
    u = unit(32, 8, 99)
    slots = bank.enqueue(u)
    sim, idx = bank.search(u, 5)
    assert torch.equal(idx[:, 0], slots)
    assert torch.allclose(sim[:, 0], torch.ones(32), atol=1e-6)
    assert bool((sim[:, :-1] >= sim[:, 1:]).all())


@pytest.mark.parametrize('chunk', [1, 7, 64, 1000])
def test_chunked_search_equals_dense_with_ties(chunk):
    keys = unit(300, 6, 1)
    keys[100:110] = keys[5]  # exact duplicates -> ties
    q = torch.cat([keys[5:6], unit(9, 6, 2)])
    dense_sim = q @ keys.T
    s, i = chunked_topk(q, keys, 15, chunk_size=chunk)
    ref_i = torch.argsort(dense_sim, dim=1, descending=True, stable=True)[:, :15]
    assert torch.equal(i, ref_i)
    assert torch.allclose(s, dense_sim.gather(1, ref_i))
    # the duplicated query: index 5 first, then the copies in increasing index order
    assert i[0, :11].tolist() == [5] + list(range(100, 110))


def test_masked_search_only_returns_allowed_entries():
    keys = unit(50, 4, 3)
    q = unit(3, 4, 4)
    mask = torch.zeros(3, 50, dtype=torch.bool)
    mask[:, ::5] = True
    _, idx = chunked_topk(q, keys, 4, chunk_size=16, mask=mask)
    assert bool((idx % 5 == 0).all())


def test_faiss_search_matches_torch():
    bank = NNMemoryBank(size=512, dim=16, search='faiss')
    ref = NNMemoryBank(size=512, dim=16)
    ref.bank.copy_(bank.bank)
    q = unit(20, 16, 7)
    s1, i1 = bank.search(q, 5)
    s2, i2 = ref.search(q, 5)
    assert torch.equal(i1, i2)
    assert torch.allclose(s1, s2, atol=1e-5)


def test_impossible_sizes_raise_clear_errors():
    bank = NNMemoryBank(size=100, dim=4)
    with pytest.raises(ValueError, match='not a multiple of the global batch'):
        bank.check_batch(32)
    with pytest.raises(ValueError, match='larger than the memory bank'):
        bank.check_batch(20, k=101)
    with pytest.raises(ValueError, match='not a multiple'):
        bank.enqueue(unit(30, 4))
    with pytest.raises(ValueError, match='k=200 > bank size'):
        bank.search(unit(2, 4), 200)


def test_low_precision_bank_keeps_neighbours():
    keys = unit(4096, 64, 5)
    q = unit(64, 64, 6)
    b32 = NNMemoryBank(size=4096, dim=64)
    b16 = NNMemoryBank(size=4096, dim=64, dtype='float16')
    b32.bank.copy_(keys)
    b16.bank.copy_(keys.half())
    assert b16.bank.dtype == torch.float16
    i32 = b32.search(q, 10)[1]
    i16 = b16.search(q, 10)[1]
    overlap = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(i32, i16)) / i32.numel()
    assert overlap >= 0.99
