"""kNN evaluation: 1-NN / 20-NN unweighted (paper) and weighted votes against a NumPy brute
force, any number of test images, features cached on disk and invalidated by new weights."""
import os
import os.path as osp
import runpy
import sys

import numpy as np
import pytest
import torch

from mmmsf.evaluation import extract_features, knn_classify, knn_predict
from mmmsf.evaluation.results_io import read_results
from mmmsf.registry import MODELS
from mmmsf.utils.knn_search import gpu_search_available
from tests.conftest import MINI, ROOT, tiny_msf_cfg


pytestmark = pytest.mark.usefixtures('one_thread')


def brute_force_knn(tr, ytr, te, k, weighted, T=0.07):
    sims = te @ tr.T
    preds = []
    for s in sims:
        order = np.argsort(-s, kind='stable')[:k]
        votes = np.zeros(ytr.max() + 1)
        for rank, j in enumerate(order):
            votes[ytr[j]] += np.exp(s[j] / T) if weighted else 1.0 + 1e-6 * (k - rank)
        preds.append(votes.argmax())
    return np.array(preds)


@pytest.mark.parametrize('weighted', [False, True])
def test_votes_match_brute_force_for_any_number_of_test_images(weighted):
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(5, 16))
    ytr, yte = rng.integers(0, 5, 300), rng.integers(0, 5, 103)
    tr = centers[ytr] + rng.normal(scale=1.5, size=(300, 16))
    te = centers[yte] + rng.normal(scale=1.5, size=(103, 16))
    tr /= np.linalg.norm(tr, axis=1, keepdims=True)
    te /= np.linalg.norm(te, axis=1, keepdims=True)
    args = [torch.from_numpy(a) for a in (tr.astype(np.float32), ytr, te.astype(np.float32), yte)]
    res = knn_classify(*args, ks=(1, 20), weighted=weighted)
    chunked = knn_classify(*args, ks=(1, 20), weighted=weighted, batch_size=7)  # 15 chunks
    assert res == chunked
    for k in (1, 20):
        ref = 100.0 * (brute_force_knn(tr, ytr, te, k, weighted) == yte).mean()
        assert res[f'{k}-NN'] == pytest.approx(ref)
    assert res['20-NN'] > 40  # well above the 20% chance of 5 classes
    with pytest.raises(ValueError, match='k=500 > number of training images 300'):
        knn_classify(*args, ks=(500, ))


def test_equal_similarities_rank_the_lower_training_index_first():
    """Duplicated training features: the vote's nearer neighbour is the lower index (the
    search module's order), in every test chunk."""
    rng = np.random.default_rng(1)
    base = rng.normal(size=(4, 8)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    tr = torch.from_numpy(np.concatenate([base, base]))  # row i and i + 4 are equal
    ytr = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7])
    te = torch.from_numpy(base[[3, 0, 2, 1, 0]])
    for batch_size in (1, 2, 4096):
        pred = knn_predict(tr, ytr, te, ks=(1, 2), batch_size=batch_size)
        assert pred[1].tolist() == [3, 0, 2, 1, 0]  # not the equal twin 4 .. 7
        assert pred[2].tolist() == [3, 0, 2, 1, 0]  # one vote each: the nearer (first) wins


@pytest.mark.skipif(gpu_search_available(), reason='faiss-gpu present')
def test_gpu_search_without_faiss_gpu_says_what_to_install():
    tr, te = torch.eye(3), torch.eye(3)[:1]
    with pytest.raises(RuntimeError, match='needs faiss-gpu and a CUDA device'):
        knn_predict(tr, torch.arange(3), te, ks=(1, ), gpu=True)
    assert knn_predict(tr, torch.arange(3), te, ks=(1, ), gpu='auto')[1].tolist() == [0]


def test_feature_cache_is_reused_and_invalidated_by_new_weights(tmp_path):
    from mmengine.runner import Runner
    torch.manual_seed(0)
    model = MODELS.build(tiny_msf_cfg(width=4))
    model.init_weights()
    ann = tmp_path / 'few.txt'
    ann.write_text('\n'.join(f'{c}/{i:04d}.jpg' for c in ('cat', 'dog', 'ship')
                             for i in range(5)) + '\n')
    loader = Runner.build_dataloader(dict(
        batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='ImageFolder', data_root=MINI, data_prefix='train', ann_file=str(ann),
                     serialize_data=False,
                     pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')])))
    cache = str(tmp_path / 'c' / 'train.npz')
    f1, y1 = extract_features(model, loader, cache_file=cache)
    assert f1.shape == (15, 32) and torch.allclose(f1.norm(dim=1), torch.ones(15))
    assert y1.tolist() == [3] * 5 + [5] * 5 + [8] * 5  # dataset order, real labels
    real = model.extract_feat
    model.extract_feat = lambda x: (_ for _ in ()).throw(AssertionError('recomputed'))
    f2, _ = extract_features(model, loader, cache_file=cache)  # same weights: from the cache
    assert torch.equal(f1, f2)
    with torch.no_grad():
        model.backbone.conv1.weight.mul_(-1)
    with pytest.raises(AssertionError, match='recomputed'):  # new weights: not from the cache
        extract_features(model, loader, cache_file=cache)
    model.extract_feat = real
    f3, _ = extract_features(model, loader, cache_file=cache)
    assert not torch.equal(f1, f3)


def test_knn_tool_writes_results(tmp_path, monkeypatch):
    ann = tmp_path / 'sub.txt'
    ann.write_text('\n'.join(f'{c}/{i:04d}.jpg' for c in ('airplane', 'frog', 'truck')
                             for i in range(8)) + '\n')
    out = str(tmp_path / 'eval' / 'knn.json')
    opts = ['model.backbone.base_channels=4', 'model.neck.in_channels=32',
            f'knn_train_dataloader.dataset.ann_file={ann}',
            f'knn_test_dataloader.dataset.ann_file={ann}', 'knn_train_dataloader.batch_size=8']
    monkeypatch.setattr(sys, 'argv', [
        'knn_eval.py', osp.join(ROOT, 'configs/demo/msf_r18_cifar10mini_ws.py'),
        '--random-init', '--ks', '1', '5', '--cache-dir', str(tmp_path / 'cache'),
        '--out', out, '--data-root', MINI, '--cfg-options'] + opts)
    runpy.run_path(osp.join(ROOT, 'tools/knn_eval.py'), run_name='__main__')
    rec = read_results(out)
    assert rec['kind'] == 'knn' and set(rec['results']) == {'1-NN', '5-NN'}
    assert rec['checkpoint'] is None and not rec['weighted']
    assert osp.isfile(tmp_path / 'cache' / 'train.npz')
    feats = np.load(str(tmp_path / 'cache' / 'test.npz'))
    assert feats['feats'].shape == (24, 32) and len(set(feats['labels'].tolist())) == 3


def test_unreadable_feature_cache_is_recomputed_and_said_so(tmp_path):
    """A truncated cache (a copy cut short) or a file of another kind is recomputed, with one
    warning naming the file; the result is the one computed from scratch."""
    import logging

    from mmengine.logging import MMLogger
    from mmengine.runner import Runner
    torch.manual_seed(0)
    model = MODELS.build(tiny_msf_cfg(width=4))
    model.init_weights()
    ann = tmp_path / 'few.txt'
    ann.write_text('\n'.join(f'{c}/{i:04d}.jpg' for c in ('cat', 'ship') for i in range(4)) + '\n')
    loader = Runner.build_dataloader(dict(
        batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='ImageFolder', data_root=MINI, data_prefix='train', ann_file=str(ann),
                     serialize_data=False,
                     pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')])))
    cache = tmp_path / 'train.npz'
    ref, ref_y = extract_features(model, loader, cache_file=str(cache))
    whole = cache.read_bytes()
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = MMLogger.get_current_instance()
    handler = Keep(level=logging.INFO)
    logger.addHandler(handler)
    try:
        for broken in (whole[:len(whole) // 2], whole[:-30], b'not a zip file'):
            cache.write_bytes(broken)
            records.clear()
            feats, labels = extract_features(model, loader, cache_file=str(cache))
            assert torch.equal(feats, ref) and torch.equal(labels, ref_y)
            said = [r.getMessage() for r in records]
            assert said == [f'feature cache {cache} is unreadable (truncated or not a feature '
                            'cache): recomputing it.'], said
            assert records[0].levelno == logging.WARNING
            assert cache.read_bytes() == whole  # rewritten whole
    finally:
        logger.removeHandler(handler)


def test_knn_tool_recomputes_a_truncated_cache_in_one_line(tmp_path):
    """tools/knn_eval.py --cache-dir with a truncated cache: exit 0, one line saying so (was:
    a 30-line zipfile.BadZipFile traceback, exit 1)."""
    import subprocess
    (tmp_path / 'cache').mkdir()
    np.savez(tmp_path / 'cache' / 'train.npz', feats=np.zeros((24, 32), np.float32),
             labels=np.zeros(24, np.int64), fingerprint=np.array('x'))
    data = (tmp_path / 'cache' / 'train.npz').read_bytes()
    (tmp_path / 'cache' / 'train.npz').write_bytes(data[:len(data) // 2])
    ann = tmp_path / 'sub.txt'
    ann.write_text('\n'.join(f'{c}/{i:04d}.jpg' for c in ('airplane', 'frog', 'truck')
                             for i in range(8)) + '\n')
    out = tmp_path / 'knn.json'
    p = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools/knn_eval.py'),
         osp.join(ROOT, 'configs/demo/msf_r18_cifar10mini_ws.py'), '--random-init', '--ks', '1',
         '--cache-dir', str(tmp_path / 'cache'), '--out', str(out), '--data-root', MINI,
         '--cfg-options', 'model.backbone.base_channels=4', 'model.neck.in_channels=32',
         f'knn_train_dataloader.dataset.ann_file={ann}',
         f'knn_test_dataloader.dataset.ann_file={ann}'],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=ROOT))
    text = p.stdout + p.stderr
    assert p.returncode == 0, text[-3000:]
    assert 'Traceback' not in text and 'BadZipFile' not in text
    said = [line for line in text.splitlines() if 'unreadable' in line]
    assert len(said) == 1 and said[0].endswith(
        f'feature cache {tmp_path / "cache" / "train.npz"} is unreadable (truncated or not a '
        'feature cache): recomputing it.'), said
    assert set(read_results(str(out))['results']) == {'1-NN'}
    rewritten = np.load(tmp_path / 'cache' / 'train.npz')  # recomputed and written whole
    assert rewritten['feats'].shape == (24, 32) and str(rewritten['fingerprint']) != 'x'
