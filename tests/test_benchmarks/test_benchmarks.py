"""Every benchmark script runs end to end in its tiny ``--quick`` mode and writes the JSON fields
the tables of docs/performance.md are made from. (Speed goals are checked by the scripts' full
runs, not here.)
"""
import json

import pytest
import torch


@pytest.fixture
def run_quick(tmp_path):
    """Run ``benchmarks/<name>.py --quick`` in this process; restore the thread settings."""
    import faiss
    threads = torch.get_num_threads()

    def run(name, *extra):
        import importlib
        module = importlib.import_module(f'benchmarks.{name}')
        out = tmp_path / f'{name}.json'
        module.main(['--quick', '--threads', '1', '--out', str(out), *extra])
        payload = json.loads(out.read_text())
        assert payload['benchmark'] == name and payload['quick'] is True
        machine = payload['machine']
        assert machine['CPU cores'] >= 1 and len(machine['load_avg_1_5_15']) == 3
        assert machine['CPU'] and machine['PyTorch'] == torch.__version__ and machine['mmmsf']
        assert machine['torch_threads'] == 1 and machine['device'] == 'cpu'
        assert payload['results'], 'no measurements'
        return payload

    yield run
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)


def test_step_overhead(run_quick):
    out = run_quick('step_overhead')
    rows = out['results']
    byol = [r for r in rows if r['variant'] == 'BYOL-asym']
    msf = [r for r in rows if r['variant'] == 'MSF']
    assert len(byol) == 1 and byol[0]['k'] == 1 and byol[0]['ratio_to_byol'] == 1.0
    assert {(r['bank_size'], r['search']) for r in msf} == {
        (s, b) for s in out['settings']['bank_sizes'] for b in ('torch', 'faiss')}
    for r in msf:
        assert r['step_ms'] > 0 and r['ratio_to_byol'] > 0 and r['k'] == 5
        assert 0 < r['search_ms'] < r['step_ms'] and 0 < r['search_share'] < 1
    flop_shares = [r['search_flop_share'] for r in msf if r['search'] == 'torch']
    assert flop_shares == sorted(flop_shares)  # the search grows with the bank
    assert out['settings']['byol_step_gflops'] > 0


def test_search_kernel(run_quick):
    rows = run_quick('search_kernel')['results']
    gemm = [r for r in rows if r['variant'].startswith('fp32 GEMM')]
    assert len(gemm) == 1 and gemm[0]['gflops'] > 0
    searches = {r['variant']: r for r in rows if 'bank_dtype' in r}
    assert len(searches) == 6  # torch / faiss x float32 / float16 / bfloat16
    for name, r in searches.items():
        assert r['gflops'] > 0 and r['fraction_of_gemm'] > 0
        assert r['overlap_with_fp32'] >= 0.9, name
    # torch and faiss find the same neighbours in the float32 bank; half storage halves it
    assert searches['faiss search, float32 bank']['overlap_with_fp32'] == 1.0
    assert searches['torch search, float16 bank']['bank_bytes'] * 2 == \
        searches['torch search, float32 bank']['bank_bytes']


def test_memory(run_quick):
    out = run_quick('memory')
    held = out['held']
    dim = out['settings']['dim']
    for r in held:
        assert r['bytes'] >= r['payload_bytes'] and r['ratio'] < 1.3
        if r['what'].startswith('NNMemoryBank') and r['dtype'] == 'float32':
            k = r['shape'][0]  # rows + int64 label and dataset index per slot + 2 scalars
            assert r['bytes'] == k * dim * 4 + 16 * k + 16
    steps = out['results']
    # the hot path of MSF: one step allocates one distance block, nothing bank-sized beyond it
    for r in steps:
        if r['selector'] == 'top-k' and r['search'] == 'torch':
            assert r['within_one_block'] is True, r
            assert r['largest_alloc_bytes'] <= r['distance_block_bytes']
        if r['search'] == 'faiss':
            assert r['within_one_block'] is None


def test_cmsf_extras(run_quick):
    out = run_quick('cmsf_extras')
    steps = {r['variant']: r for r in out['results']}
    assert steps['MSF']['ratio_to_msf'] == 1.0
    bank, dim = out['settings']['bank_size'], out['settings']['preset']['dim']
    two_q = [r for name, r in steps.items() if name.startswith('CMSF-2Q')]
    assert len(two_q) == 1 + len(out['settings']['dataset_sizes'])
    for r in two_q:
        assert r['second_bank_bytes'] == bank * dim * 4 + bank  # M' rows + valid flags
        assert r['step_ms'] > 0
    prev = [r for r in two_q if 'previous visit' in r['variant']]
    assert [r['cache_images'] for r in prev] == out['settings']['dataset_sizes']
    assert prev[0]['embedding_cache_bytes'] < prev[-1]['embedding_cache_bytes']
    km = out['kmeans']
    assert [r['images'] for r in km] == out['settings']['dataset_sizes']
    for r in km:
        assert r['measured'] and r['kmeans_s'] > 0 and 0 < r['share'] < 1
        assert r['clusters'] == round(r['images'] / (1281167 / 50000))


def test_data_loading(run_quick):
    out = run_quick('data_loading')
    stages = {r['stage']: r['images_per_s'] for r in out['results']}
    assert all(v > 0 for v in stages.values())
    assert out['per_worker_images_per_s'] == stages['full sample (decode + w + s + pack)']
    # a full sample is decode + both views: slower than decoding alone
    assert out['per_worker_images_per_s'] < stages['decode (LoadImageFromFile)']
    assert out['workers_needed'] >= 1 and out['step_images_per_s'] > 0


def test_data_loading_times_real_workers_after_their_prefetch(run_quick):
    out = run_quick('data_loading', '--workers', '1', '--loader-batch', '4',
                    '--loader-batches', '3')
    assert set(out['loader_images_per_s']) == {'1'}  # JSON keys
    assert out['loader_images_per_s']['1'] > 0
    assert any(r['stage'] == 'DataLoader, 1 worker(s), batch 4' for r in out['results'])


def test_step_throughput(run_quick):
    out = run_quick('step_throughput')
    rows = {r['format']: r for r in out['results']}
    assert set(rows) == {'fp32', 'fp32+channels_last'}  # AMP formats need CUDA
    assert rows['fp32']['speedup_vs_first'] == 1.0
    for r in rows.values():
        assert r['images_per_s'] > 0 and len(r['images_per_s_all']) == 1
        assert r['step_ms'] == pytest.approx(out['settings']['preset']['batch'] /
                                             r['images_per_s'] * 1e3)


def test_step_throughput_refuses_amp_on_the_cpu(tmp_path):
    from benchmarks import step_throughput
    with pytest.raises(SystemExit, match='AMP needs CUDA'):
        step_throughput.main(['--quick', '--formats', 'amp', '--out', str(tmp_path / 'x.json')])


def test_bad_data_root_is_one_clear_error(tmp_path):
    from benchmarks import data_loading
    threads = torch.get_num_threads()
    try:
        with pytest.raises(SystemExit, match='has no train/ folder'):
            data_loading.main(['--quick', '--threads', '1', '--data-root', str(tmp_path),
                               '--out', str(tmp_path / 'x.json')])
    finally:
        torch.set_num_threads(threads)


def test_sharded_bank(run_quick):
    out = run_quick('sharded_bank')
    rows = out['results']
    assert [r['bank_size'] for r in rows] == out['settings']['bank_sizes']
    dim = out['settings']['preset']['dim']
    for r in rows:
        world, size = r['world'], r['bank_size']
        assert world == 2
        # per rank: K x D x 4 / W embedding bytes, plus labels and dataset indices (8 + 8 per
        # local slot) and the two pointers
        assert r['embedding_bytes_per_rank'] == r['expected_embedding_bytes'] == \
            size * dim * 4 // world
        assert r['bank_bytes_per_rank'] == size * dim * 4 // world + 16 * size // world + 16
        assert r['replicated_bank_bytes'] == size * dim * 4 + 16 * size + 16
        assert r['ratio'] > 0 and len(r['ratios']) == out['settings']['repeats']
        assert r['sharded_comm_bytes'] > r['replicated_comm_bytes'] > 0
    model = out['cost_model']
    assert {m['world'] for m in model} == {8, 16, 32, 64, 128, 256, 512}
    for m in model:  # memory falls as 1/W; the search FLOPs per GPU do not
        assert abs(m['gib_per_gpu'] * m['world'] - m['replicated_gib_per_gpu']) < 1e-6
        assert m['mib_per_step'] > m['extra_mib_vs_replicated'] > 0


def test_knn_val_cost(run_quick):
    out = run_quick('knn_val_cost')
    rates = out['settings']['rates']
    assert all(v > 0 for v in rates.values()), rates
    sub, full = out['results']
    assert sub['memory_images'] == 128000 and full['memory_images'] == 1281167
    for r in (sub, full):
        assert r['share_per_validation'] == max(r['share_compute'], r['share_loading'])
        assert r['share_amortised'] == pytest.approx(r['share_per_validation'] / 10)
    assert sub['share_per_validation'] < full['share_per_validation']  # the subset is cheaper
    assert sub['meets_goal'] == (sub['share_per_validation'] <= 0.03)
