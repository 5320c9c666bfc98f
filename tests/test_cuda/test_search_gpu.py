"""The bank search on the GPU: faiss-gpu = torch GPU = CPU (indices, order, ties), and the
half-precision banks' neighbours against float32.

Each test also runs on the CPU (``device='cpu'``): the same data, references and checks with the
CPU backends, so what judges the GPU run is exercised everywhere.
"""
import pytest
import torch
import torch.nn.functional as F

from mmmsf.evaluation.knn import knn_predict, vote
from mmmsf.models.memories import NNMemoryBank
from mmmsf.utils.knn_search import _block_similarities
import mmmsf.utils.knn_search as knn_search
from tests.test_cuda.compare import (DEVICES, copies_bank, half_rounding_bound, integer_bank,
                                     neighbour_mismatches, overlap, reference_topk,
                                     require_faiss_gpu, tie_rows)

K = 5


def bank_on(device: str, keys: torch.Tensor, dtype: str = 'float32',
            chunk_size: int = 1000) -> NNMemoryBank:
    bank = NNMemoryBank(keys.shape[0], keys.shape[1], dtype=dtype, chunk_size=chunk_size)
    bank = bank.to(device)
    bank.bank.copy_(keys)
    return bank


@pytest.mark.parametrize('device', DEVICES)
def test_faiss_and_torch_search_equal_the_cpu_reference_with_ties(device):
    """Exact integer similarities with many ties at the k-th place: every backend on
    ``device`` returns the dense float64 reference's indices in its order (ties: lower index
    first) and its similarities exactly."""
    if device == 'cuda':
        require_faiss_gpu()
    keys, q = integer_bank(4096, 16, 64)
    ref = reference_topk(q, keys, K)
    assert tie_rows(ref[0], K, q, keys) >= 16  # the data does exercise the tie rule
    bank = bank_on(device, keys)
    problems = []
    for search in ('torch', 'faiss'):
        bank.search_backend = search
        got = bank.search(q.to(device), K)
        assert got[1].device.type == device and got[0].dtype == torch.float32
        problems += neighbour_mismatches(ref, got, atol=0.0, name=f'{search} on {device}')
    assert not problems, '\n'.join(problems)
    if device == 'cuda':  # and the GPU results equal the CPU backends' results
        cpu = bank_on('cpu', keys)
        for search in ('torch', 'faiss'):
            cpu.search_backend = bank.search_backend = search
            assert not neighbour_mismatches(cpu.search(q, K), bank.search(q.cuda(), K),
                                            name=search)


@pytest.mark.parametrize('device', DEVICES)
def test_faiss_orders_ties_inside_the_top_k_by_index(device, monkeypatch):
    """Exact ties inside the top-k and none across the cut: faiss's own result is used (no
    fallback to the torch search) and equal similarities come in bank-index order, as the
    torch search and the reference give them."""
    if device == 'cuda':
        require_faiss_gpu()
    keys, q = copies_bank(8192, 32, 64, copies=3)
    ref = reference_topk(q, keys, 4)
    assert bool((ref[0][:, 2] == ref[0][:, 0]).all() and (ref[0][:, 3] < ref[0][:, 2]).all())
    bank = bank_on(device, keys, chunk_size=2000)
    calls = []
    real = knn_search.chunked_topk
    monkeypatch.setattr(knn_search, 'chunked_topk',
                        lambda *a, **kw: calls.append(1) or real(*a, **kw))
    bank.search_backend = 'faiss'
    got = bank.search(q.to(device), 3)
    assert not calls, 'faiss fell back to the torch search'
    assert not neighbour_mismatches((ref[0][:, :3], ref[1][:, :3]), got, name='faiss')
    bank.search_backend = 'torch'
    assert not neighbour_mismatches((ref[0][:, :3], ref[1][:, :3]), bank.search(q.to(device), 3),
                                    name='torch')


@pytest.mark.parametrize('device', DEVICES)
def test_float_search_equals_float64_reference_where_it_is_decided(device):
    """Random unit vectors (no exact ties): torch and faiss on ``device`` agree with the
    float64 reference on every query whose first k+1 similarities are further apart than
    float32 rounding can bridge, and their similarities are float32-accurate."""
    if device == 'cuda':
        require_faiss_gpu()
    g = torch.Generator().manual_seed(1)
    keys = F.normalize(torch.randn(20000, 64, generator=g), dim=1)
    q = F.normalize(torch.randn(128, 64, generator=g), dim=1)
    ref_s, ref_i = reference_topk(q, keys, K + 1)
    decided = ((ref_s[:, :K] - ref_s[:, 1:]) > 1e-5).all(dim=1)  # order and cut both decided
    assert int(decided.sum()) > 100
    bank = bank_on(device, keys, chunk_size=3000)
    for search in ('torch', 'faiss'):
        bank.search_backend = search
        s, i = bank.search(q.to(device), K)
        assert not neighbour_mismatches((ref_s[decided, :K], ref_i[decided, :K]),
                                        (s.cpu()[decided], i.cpu()[decided]), atol=2e-6,
                                        name=search)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16], ids=['float16', 'bfloat16'])
@pytest.mark.parametrize('device', DEVICES)
def test_half_precision_bank_neighbours_against_float32(device, dtype, record_property):
    """A float16/bfloat16 bank (on the GPU: the stored-precision GEMM with float32
    accumulation) returns similarities equal to the exact dot products of the rounded vectors
    to float32 accuracy, neighbours whose true similarity is within the rounding bound of the
    float32 bank's k-th, and >= 98% of the float32 bank's neighbours. The first check also
    tells the GPU kernel's path: a float32 fallback would not round the query and miss by
    ~1e-3."""
    g = torch.Generator().manual_seed(2)
    size, dim = 32768, 128
    keys = F.normalize(torch.randn(size, dim, generator=g), dim=1)
    q = F.normalize(torch.randn(256, dim, generator=g), dim=1)
    name = {torch.float16: 'float16', torch.bfloat16: 'bfloat16'}[dtype]
    fp32 = bank_on(device, keys, chunk_size=16384)
    half = bank_on(device, keys, name, chunk_size=16384)
    assert half.bank.dtype == dtype and half.nbytes < 0.6 * fp32.nbytes
    s32, i32 = fp32.search(q.to(device), K)
    s16, i16 = half.search(q.to(device), K)
    # what the kernel computes: on a GPU the query is cast to the bank's dtype too
    q_eff = q.to(dtype) if device == 'cuda' else q
    exact = (q_eff.double() @ half.bank.cpu().double().T)
    err = float((s16.cpu().double() - exact.gather(1, i16.cpu())).abs().max())
    record_property('max_abs_err_vs_exact_rounded', f'{err:.2e}')
    record_property('overlap_with_fp32', f'{overlap(i32, i16):.4f}')
    assert err <= 1e-5
    true_sim = q.double() @ keys.double().T
    kth = true_sim.gather(1, i32.cpu())[:, -1:]
    bound = half_rounding_bound(dtype)
    assert bool((true_sim.gather(1, i16.cpu()) >= kth - 2 * bound).all())
    assert overlap(i32, i16) >= 0.98


@pytest.mark.cuda
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16], ids=['float16', 'bfloat16'])
def test_gpu_half_gemm_accumulates_in_float32(dtype):
    """``torch.mm(..., out_dtype=float32)`` on half inputs is available on this GPU and sums in
    float32: 4096 products of 2^-6 sum to exactly 64 (float16 accumulation would stall at
    2^5 + ...: its spacing at 32 is 2^-5, twice each product)."""
    a = torch.full((8, 4096), 2.0 ** -3, device='cuda', dtype=dtype)
    b = torch.full((4096, 16), 2.0 ** -3, device='cuda', dtype=dtype)
    out = torch.mm(a, b, out_dtype=torch.float32)
    assert out.dtype == torch.float32
    assert torch.equal(out, torch.full_like(out, 64.0))
    # and the bank's block kernel gives the same
    buf = torch.empty(8, 16, device='cuda')
    _block_similarities(a.float(), b.T.contiguous(), buf, staging=None)
    assert torch.equal(buf, torch.full_like(buf, 64.0))


@pytest.mark.parametrize('device', DEVICES)
def test_knn_evaluation_search_equals_the_reference_with_ties(device):
    """The kNN evaluation searches with the bank's search module: with ``gpu`` on (cuda) or off
    (cpu) its neighbours, ties included, are the dense reference's, so are its predictions."""
    if device == 'cuda':
        require_faiss_gpu()
    keys, q = integer_bank(4096, 16, 64)
    labels = torch.randint(0, 10, (keys.shape[0], ), generator=torch.Generator().manual_seed(0))
    ks = (1, 20)
    ref_s, ref_i = reference_topk(q, keys, max(ks))
    got = knn_predict(keys, labels, q, ks=ks, batch_size=24, gpu=device == 'cuda')
    for k in ks:
        expect = vote(labels[ref_i[:, :k]], ref_s[:, :k].float(), 10)
        assert torch.equal(got[k], expect), k
