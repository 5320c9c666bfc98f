"""CMSF's hooks and state: k-means ids are faiss's assignment and the same on 2 gloo ranks, the
pseudo-label hook trains on cached labelled embeddings and its threshold switches the
constraint, and every piece of CMSF state survives a checkpoint."""
import os
import socket

import faiss
import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from mmmsf.engine.hooks import KMeansClusterHook, PseudoLabelHook
from mmmsf.engine.hooks.pseudo_label_hook import read_labelled_list
from mmmsf.registry import DATASETS, MODELS
from tests.conftest import tiny_msf_cfg

DIM = 16


def tiny_cmsf(selector: dict, cache: bool = True, **kw):
    cfg = tiny_msf_cfg(size=64, dim=DIM, topk=3, type='CMSF', target_bn='none',
                       constrained_selector=selector,
                       embedding_cache=dict(type='EmbeddingCache') if cache else None, **kw)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def blobs(n: int, k: int, seed: int):
    """``n`` unit vectors around ``k`` random centres; (x, blob id)."""
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(k, DIM, generator=g), dim=1)
    y = torch.arange(n) % k
    x = F.normalize(centres[y] + 0.05 * torch.randn(n, DIM, generator=g), dim=1)
    return x, y


def faiss_reference(x: torch.Tensor, k: int, niter: int, seed: int) -> np.ndarray:
    """The authors' path: faiss.Clustering on a flat L2 index, then nearest centroid."""
    xs = np.ascontiguousarray(x.numpy(), dtype=np.float32)
    clus = faiss.Clustering(xs.shape[1], k)
    clus.niter, clus.seed = niter, seed
    index = faiss.IndexFlatL2(xs.shape[1])
    clus.train(xs, index)
    return index.search(xs, 1)[1][:, 0]


# ---------------------------------------------------------------------------- k-means
def test_kmeans_ids_equal_faiss_assignment():
    model = tiny_cmsf(dict(type='KMeansSelector'))
    x, _ = blobs(300, 6, seed=0)
    cache = model.embedding_cache
    cache.allocate(320)  # 20 images never seen
    cache.update(torch.arange(300), x)
    ids = KMeansClusterHook(num_clusters=6, niter=20, seed=3).cluster(model)
    assert ids[:300].tolist() == faiss_reference(x, 6, 20, 3).tolist()
    assert (ids[300:] == -1).all()
    assert torch.equal(model.constrained_selector.cluster_ids, ids)
    # a k-means fixed point: every image is nearest to the mean of its own cluster
    means = torch.stack([x[ids[:300] == c].mean(0) for c in range(6)])
    assert torch.equal(torch.cdist(x, means).argmin(dim=1), ids[:300])
    with pytest.raises(ValueError, match='lower num_clusters'):
        KMeansClusterHook(num_clusters=301).cluster(model)


def _km_rank(rank: int, world: int, port: int, out_dir: str) -> None:
    from mmengine.registry import init_default_scope
    init_default_scope('mmmsf')
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    torch.distributed.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                                         rank=rank, world_size=world)
    model = tiny_cmsf(dict(type='KMeansSelector'))
    x, _ = blobs(200, 5, seed=rank)  # different caches: only a broadcast makes the ids agree
    model.embedding_cache.allocate(200)
    model.embedding_cache.update(torch.arange(200), x)
    ids = KMeansClusterHook(num_clusters=5, niter=10, seed=1).cluster(model)
    bank = model.memory_bank  # the same bank and queries on both ranks
    bank.bank.copy_(blobs(64, 5, seed=9)[0])
    bank.sample_idx.copy_(torch.arange(64) * 3)
    q = blobs(6, 5, seed=11)[0]
    out = model.constrained_selector(q, bank, 3, sample_idx=torch.arange(6) * 7)
    mask, _ = model.constrained_selector.constraint_mask(q, bank, sample_idx=torch.arange(6) * 7)
    torch.save(dict(ids=ids, indices=out.indices, mask=mask.to_dense(), x=x),
               os.path.join(out_dir, f'rank{rank}.pt'))
    torch.distributed.destroy_process_group()


def test_kmeans_ids_identical_on_two_gloo_ranks(tmp_path):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    # fork: the children inherit the imported modules (a spawn re-imports them, ~10 s); they
    # run single-threaded, so no OpenMP pool crosses the fork
    mp.start_processes(_km_rank, args=(2, port, str(tmp_path)), nprocs=2, join=True,
                       start_method='fork')
    r0, r1 = (torch.load(str(tmp_path / f'rank{r}.pt')) for r in (0, 1))
    assert torch.equal(r0['ids'], r1['ids'])
    assert r0['ids'].tolist() == faiss_reference(r0['x'], 5, 10, 1).tolist()  # rank 0's k-means
    assert r1['ids'].tolist() != faiss_reference(r1['x'], 5, 10, 1).tolist()  # not rank 1's own
    assert torch.equal(r0['mask'], r1['mask'])  # the same C for the same query
    assert torch.equal(r0['indices'], r1['indices'])


# ---------------------------------------------------------------------------- pseudo-labels
@pytest.fixture
def labelled_setup(image_folder, tmp_path):
    dataset = DATASETS.build(dict(type='ImageFolder', data_root=str(image_folder),
                                  data_prefix='train'))
    lst = tmp_path / 'labelled.txt'
    lst.write_text(''.join(f'class{c}/{i:03d}.jpg\n' for c in range(3) for i in (0, 1)))
    return dataset, str(lst)


def test_labelled_list_is_read_and_checked(labelled_setup, tmp_path):
    dataset, lst = labelled_setup
    idx = read_labelled_list(lst, dataset)
    assert [dataset.get_data_info(i)['img_path'].split('train/')[-1] for i in idx] == \
        [f'class{c}/{i:03d}.jpg' for c in range(3) for i in (0, 1)]
    bad = tmp_path / 'bad.txt'
    bad.write_text('class0/000.jpg\nclass9/123.jpg\n')
    with pytest.raises(ValueError, match='class9/123.jpg'):
        read_labelled_list(str(bad), dataset)
    ambiguous = tmp_path / 'names.txt'
    ambiguous.write_text('000.jpg\n')  # bare file names must be unique in the training set
    with pytest.raises(ValueError, match='000.jpg'):
        read_labelled_list(str(ambiguous), dataset)
    with pytest.raises(FileNotFoundError, match='labelled subset list'):
        read_labelled_list(str(tmp_path / 'none.txt'), dataset)


def test_pseudo_label_hook_trains_and_threshold_switches_constraint(labelled_setup):
    dataset, lst = labelled_setup
    model = tiny_cmsf(dict(type='PseudoLabelSelector', num_classes=3, threshold=0.85,
                           hid_channels=32))
    sel, cache = model.constrained_selector, model.embedding_cache
    hook = PseudoLabelHook(lst, epochs=30, lr=0.1, batch_size=4)
    cache.allocate(len(dataset))
    hook.set_labelled(model, dataset)
    assert sel.is_labelled.sum() == 6
    before = {k: v.clone() for k, v in sel.classifier.state_dict().items()}
    assert hook.train_classifier(model)['samples'] == 0  # nothing cached yet: no training
    assert not bool(sel.trained)
    # cached target embeddings: class c around axis c
    labels = torch.tensor(dataset.labels)
    g = torch.Generator().manual_seed(0)
    emb = F.normalize(F.one_hot(labels, DIM).float() + 0.2 * torch.randn(len(labels), DIM,
                                                                          generator=g), dim=1)
    cache.update(torch.arange(len(labels)), emb)
    stats = hook.train_classifier(model)
    assert stats['samples'] == 6 and stats['train_acc'] == 1.0 and bool(sel.trained)
    after = sel.classifier.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert not any(p.requires_grad for p in sel.classifier.parameters())  # frozen in the model
    # unlabelled images, one per class; their pseudo-labels come from the trained classifier
    unl = torch.tensor([2, 8, 14])
    bank = model.memory_bank
    bank.bank[:len(labels)] = emb
    bank.labels[:len(labels)], bank.sample_idx[:len(labels)] = labels, torch.arange(len(labels))
    sel.after_enqueue(bank, torch.arange(len(labels)), emb, sample_idx=torch.arange(len(labels)),
                      labels=labels)
    info = sel.constraint_labels(emb[unl], unl, labels[unl])
    assert info['pseudo'].tolist() == [0, 1, 2]
    sel.threshold = 0.0
    out = sel(emb[unl], bank, 3, sample_idx=unl, labels=labels[unl])
    assert out.constrained.all()
    sel.threshold = 1.01
    assert not sel(emb[unl], bank, 3, sample_idx=unl, labels=labels[unl]).constrained.any()
    labelled = torch.tensor([0, 6, 12])  # labelled queries keep their ground-truth constraint
    assert sel(emb[labelled], bank, 3, sample_idx=labelled,
               labels=labels[labelled]).constrained.all()


# ---------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize('selector', [
    dict(type='KMeansSelector'),
    dict(type='TwoQueueSelector', second_query='previous_visit'),
    dict(type='PseudoLabelSelector', num_classes=4, hid_channels=8),
], ids=lambda s: s['type'])
def test_cmsf_state_round_trips_through_a_checkpoint(selector, tmp_path):
    a = tiny_cmsf(selector)
    n = 40
    a.embedding_cache.allocate(n)
    a.embedding_cache.update(torch.arange(0, n, 2), blobs(n // 2, 3, seed=4)[0])
    sel = a.constrained_selector
    if selector['type'] == 'KMeansSelector':
        sel.set_cluster_ids(torch.arange(n) % 7 - 1)
    elif selector['type'] == 'TwoQueueSelector':
        sel.after_enqueue(a.memory_bank, torch.arange(8, 16), None,
                          previous_target=blobs(8, 2, seed=5)[0],
                          previous_valid=torch.arange(8) % 3 > 0)
    else:
        sel.set_labelled(torch.arange(n) % 5 == 0)
        with torch.no_grad():
            for p in sel.classifier.parameters():
                p.normal_()
        sel.load_classifier(sel.classifier.state_dict())
        sel.slot_labels[:10] = torch.arange(10) % 4
    path = str(tmp_path / 'ckpt.pth')
    torch.save(a.state_dict(), path)
    b = tiny_cmsf(selector)  # fresh: nothing allocated, nothing learnt
    missing, unexpected = b.load_state_dict(torch.load(path, weights_only=True), strict=True)
    assert not missing and not unexpected
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    assert torch.equal(b.embedding_cache.valid, a.embedding_cache.valid)
    assert b.embedding_cache.valid.sum() == n // 2
    # a checkpoint from another dataset size is refused with a clear message
    c = tiny_cmsf(selector)
    c.embedding_cache.allocate(n + 1)
    with pytest.raises(ValueError, match='dataset'):
        c.load_state_dict(torch.load(path, weights_only=True))
