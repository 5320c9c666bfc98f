import pytest
import torch
import torch.nn.functional as F

from mmmsf.models.memories import NNMemoryBank
from mmmsf.utils.knn_search import chunked_topk


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


@pytest.mark.parametrize('chunk', [3, 50, 4096])
def test_masked_chunked_search_equals_dense_including_excluded_ties(chunk):
    # sparse masks leave fewer than k allowed entries in most chunks: the excluded (-inf)
    # entries then tie at the cut and must still come back in increasing index order
    keys = unit(200, 8, 11)
    keys[150:160] = keys[20]
    q = torch.cat([keys[20:21], unit(5, 8, 12)])
    g = torch.Generator().manual_seed(3)
    mask = torch.rand(6, 200, generator=g) < 0.05
    mask[0, 150:160] = True
    dense = (q @ keys.T).masked_fill(~mask, float('-inf'))
    ref = torch.argsort(dense, dim=1, descending=True, stable=True)[:, :12]
    s, i = chunked_topk(q, keys, 12, chunk_size=chunk, mask=mask)
    assert torch.equal(i, ref)
    assert torch.allclose(s, dense.gather(1, ref), atol=1e-6)  # -inf where C is short of k


@pytest.mark.parametrize('dtype', ['float16', 'bfloat16'])
def test_low_precision_bank_search_is_exact_on_stored_values(dtype):
    bank = NNMemoryBank(size=640, dim=16, dtype=dtype, chunk_size=100)
    bank.enqueue(unit(640, 16, 8))
    bank.enqueue(bank.bank[:64].float())  # duplicates of stored rows: ties in the bank
    q = unit(7, 16, 9)
    dense = q @ bank.bank.float().T
    ref = torch.argsort(dense, dim=1, descending=True, stable=True)[:, :6]
    assert torch.equal(bank.search(q, 6)[1], ref)
    bank.search_backend = 'faiss'  # chunked float32 staging, merged per chunk
    s, i = bank.search(q, 6)
    assert torch.allclose(s, dense.gather(1, ref), atol=1e-5)
    assert bool((dense.gather(1, i) >= dense.gather(1, ref)[:, -1:] - 1e-6).all())


def test_host_pointer_follows_loaded_and_edited_state():
    bank = NNMemoryBank(size=16, dim=4)
    bank.enqueue(unit(4, 4, 0))
    assert bank.write_pointer == 4 and bank.total_written == 4
    other = NNMemoryBank(size=16, dim=4)
    for s in range(3):
        other.enqueue(unit(4, 4, s))
    bank.load_state_dict(other.state_dict())  # resume: pointer 12, 12 written
    assert bank.write_pointer == 12 and bank.fill == 12 / 16
    assert bank.enqueue(unit(4, 4, 5)).tolist() == [12, 13, 14, 15]
    assert int(bank.ptr) == 0 and bank.write_pointer == 0 and int(bank.num_written) == 16
    bank.ptr.fill_(8)  # an in-place edit outside enqueue is seen too
    assert bank.enqueue(unit(4, 4, 6)).tolist() == [8, 9, 10, 11]
    with pytest.raises(ValueError, match=r'expects \(N, 4\) embeddings'):
        bank.enqueue(unit(4, 5, 0))


def test_bank_bytes_and_chunked_search_argument_errors():
    bank = NNMemoryBank(size=32, dim=8, dtype='float16')
    assert bank.nbytes == 32 * 8 * 2 + 2 * 32 * 8 + 2 * 8  # rows, labels + indices, 2 scalars
    with pytest.raises(ValueError, match=r'search mask must be \(B, K\)'):
        chunked_topk(unit(2, 8), unit(32, 8), 3, mask=torch.ones(2, 31, dtype=torch.bool))
    with pytest.raises(ValueError, match=r'query \(B, D\) and keys \(K, D\)'):
        chunked_topk(unit(2, 8), unit(32, 7), 3)


def test_deferred_tie_check_flags_ties_it_did_not_resolve():
    # the GPU path checks ties once per search instead of once per block (no per-block sync)
    from mmmsf.utils.knn_search import _chunked_topk_pass
    keys = unit(64, 4, 1)
    keys[40:45] = keys[3]
    q = keys[3:4].clone()
    s, i, unresolved = _chunked_topk_pass(q, keys, 3, 16, None, fix_ties=False)
    assert bool(unresolved)
    s, i, unresolved = _chunked_topk_pass(q, keys, 3, 16, None, fix_ties=True)
    assert not bool(unresolved) and i[0].tolist() == [3, 40, 41]
    _, _, unresolved = _chunked_topk_pass(unit(2, 4, 5), keys[:30], 3, 16, None, False)
    assert not bool(unresolved)


def test_faiss_search_breaks_ties_like_the_torch_search():
    bank = NNMemoryBank(size=300, dim=6, search='faiss', chunk_size=64)
    keys = unit(300, 6, 1)
    keys[100:110] = keys[5]  # duplicates: ties inside the top-k and across its cut
    bank.bank.copy_(keys)
    q = torch.cat([keys[5:6], unit(4, 6, 2)])
    ref = torch.argsort(q @ keys.T, dim=1, descending=True, stable=True)
    for k in (4, 11, 12):
        assert torch.equal(bank.search(q, k)[1], ref[:, :k]), k


def test_auto_search_uses_faiss_on_cpu_with_the_same_answer(monkeypatch):
    import mmmsf.utils.knn_search as fu
    calls = []
    real = fu.faiss_knn
    monkeypatch.setattr(fu, 'faiss_knn', lambda *a, **kw: calls.append(1) or real(*a, **kw))
    bank = NNMemoryBank(size=256, dim=8, search='auto')
    q = unit(5, 8, 4)
    ref = chunked_topk(q, bank.bank, 4)
    s, i = bank.search(q, 4)
    assert calls and torch.equal(i, ref[1]) and torch.allclose(s, ref[0], atol=1e-6)
    calls.clear()
    bank.search(q, 4, mask=torch.ones(5, 256, dtype=torch.bool))  # masks: torch search
    assert not calls
    with pytest.raises(KeyError, match="'torch', 'faiss' or 'auto'"):
        NNMemoryBank(size=8, dim=2, search='fast')
