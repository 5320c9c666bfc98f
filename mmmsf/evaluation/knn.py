"""k-nearest-neighbour evaluation of a frozen backbone (paper Table 2, 1-NN and 20-NN).

Protocol (reference code): pooled backbone features of both splits (eval mode), L2-normalised,
exact inner-product search with faiss (:func:`~mmmsf.utils.knn_search.faiss_topk`, equal
similarities ordered by training index), and an *unweighted* majority vote among the k nearest
training images (ties go to the class of the nearer neighbours). The
similarity-weighted vote ``sum exp(s / T)`` (InstDisc/DINO) is available with ``weighted=True``.
Features are cached on disk (``cache_dir``; recomputed when the weights or images change), and
the test set is searched in chunks, so any number of test images works.
"""
import os.path as osp
from typing import Dict, Optional, Sequence, Union

import torch
from mmengine.logging import MMLogger

from mmmsf.utils.knn_search import faiss_topk, gpu_search_available
from .feature_extraction import extract_features


#: Training features per GEMM block of the CPU search (faiss's own default block): a search
#: holds at most ``batch_size x SEARCH_BLOCK`` float32 similarities.
SEARCH_BLOCK = 1024


def knn_predict(train_feats: torch.Tensor, train_labels: torch.Tensor,
                test_feats: torch.Tensor, ks: Sequence[int] = (1, 20), weighted: bool = False,
                temperature: float = 0.07, batch_size: int = 4096,
                gpu: Union[bool, str] = False) -> Dict[int, torch.Tensor]:
    """Predicted class of every test image (N, ) for each k in ``ks`` (features unit-norm).

    The neighbours come from :func:`~mmmsf.utils.knn_search.faiss_topk` (exact inner-product
    search; equal similarities ordered by training index), ``batch_size`` test images at a time.
    ``gpu``: search with faiss on the GPU (``True``), on the CPU (``False``), or on the GPU
    where faiss-gpu and a CUDA device are present (``'auto'``); the search is exact either way.
    """
    if len(train_feats) == 0 or len(test_feats) == 0:
        raise ValueError('kNN evaluation needs at least one train and one test image.')
    kmax = max(ks)
    if kmax > len(train_feats):
        raise ValueError(f'k={kmax} > number of training images {len(train_feats)}: lower k.')
    num_classes = int(train_labels.max()) + 1
    if gpu == 'auto':
        gpu = gpu_search_available()
    if gpu and not gpu_search_available():
        raise RuntimeError('kNN search on the GPU needs faiss-gpu and a CUDA device: '
                           "install requirements/faiss-gpu.txt or use gpu=False / 'auto'.")
    device = torch.device('cuda', torch.cuda.current_device()) if gpu else torch.device('cpu')
    keys = train_feats.to(device=device, dtype=torch.float32).contiguous()
    preds = {k: [] for k in ks}
    for start in range(0, len(test_feats), batch_size):  # any number of test images
        q = test_feats[start:start + batch_size].to(device=device, dtype=torch.float32)
        sim, idx = faiss_topk(q, keys, kmax, chunk_size=SEARCH_BLOCK)
        sim_t, nb_labels = sim.cpu(), train_labels[idx.cpu()]
        for k in ks:
            preds[k].append(vote(nb_labels[:, :k], sim_t[:, :k], num_classes, weighted,
                                 temperature))
    return {k: torch.cat(p) for k, p in preds.items()}


def knn_correct(train_feats: torch.Tensor, train_labels: torch.Tensor,
                test_feats: torch.Tensor, test_labels: torch.Tensor,
                ks: Sequence[int] = (1, 20), **kwargs) -> Dict[str, torch.Tensor]:
    """Per-test-image correctness (bool, N) of the k-NN vote, ``{'1-NN': .., '20-NN': ..}``.

    The paired bootstrap of :mod:`mmmsf.evaluation.bootstrap` compares two of these.
    """
    preds = knn_predict(train_feats, train_labels, test_feats, ks, **kwargs)
    return {f'{k}-NN': preds[k] == test_labels for k in ks}


def knn_classify(train_feats: torch.Tensor, train_labels: torch.Tensor,
                 test_feats: torch.Tensor, test_labels: torch.Tensor,
                 ks: Sequence[int] = (1, 20), weighted: bool = False,
                 temperature: float = 0.07, batch_size: int = 4096,
                 gpu: Union[bool, str] = False) -> Dict[str, float]:
    """Top-1 accuracy (%) of the k-NN vote for each k in ``ks`` (features already unit-norm)."""
    correct = knn_correct(train_feats, train_labels, test_feats, test_labels, ks,
                          weighted=weighted, temperature=temperature, batch_size=batch_size,
                          gpu=gpu)
    return {name: 100.0 * float(c.double().mean()) for name, c in correct.items()}


def vote(nb_labels: torch.Tensor, sim: torch.Tensor, num_classes: int, weighted: bool = False,
         temperature: float = 0.07) -> torch.Tensor:
    """Class with most votes among neighbours (B, k); ties go to the nearer neighbours' class."""
    k = nb_labels.shape[1]
    if weighted:
        w = torch.exp(sim / temperature)
    else:  # one vote each; a tiny rank-decreasing bonus breaks ties towards nearer neighbours
        w = 1.0 + 1e-6 * torch.arange(k, 0, -1, dtype=torch.float64).expand(len(nb_labels), k)
    scores = torch.zeros(len(nb_labels), num_classes, dtype=torch.float64)
    scores.scatter_add_(1, nb_labels.long(), w.double())
    return scores.argmax(dim=1)


def knn_evaluate(model, train_loader, test_loader, ks: Sequence[int] = (1, 20),
                 weighted: bool = False, cache_dir: Optional[str] = None,
                 device: Optional[torch.device] = None,
                 temperature: float = 0.07) -> Dict[str, float]:
    """Extract features of both splits with ``model`` and return ``{'1-NN': .., '20-NN': ..}``."""
    logger = MMLogger.get_current_instance()
    tr = extract_features(model, train_loader, device,
                          cache_file=osp.join(cache_dir, 'train.npz') if cache_dir else None)
    te = extract_features(model, test_loader, device,
                          cache_file=osp.join(cache_dir, 'test.npz') if cache_dir else None)
    logger.info(f'kNN: {len(tr[0])} train / {len(te[0])} test features of dim {tr[0].shape[1]}')
    return knn_classify(tr[0], tr[1], te[0], te[1], ks=ks, weighted=weighted,
                        temperature=temperature)
