"""CMSF-KM's k-means on the GPU (faiss-gpu) gives the CPU's cluster ids on a fixed set."""
import numpy as np
import pytest

from mmmsf.engine.hooks.kmeans_cluster_hook import faiss_kmeans_assign
from tests.test_cuda.compare import require_faiss_gpu


def blobs(n_per: int = 200, clusters: int = 10, dim: int = 32, seed: int = 0) -> np.ndarray:
    """Well separated Gaussian blobs around random unit centres (fixed seed)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.repeat(centres, n_per, axis=0) + 0.02 * rng.standard_normal(
        (clusters * n_per, dim)).astype(np.float32)
    return x[rng.permutation(len(x))].astype(np.float32)


@pytest.mark.cuda
def test_faiss_gpu_kmeans_ids_equal_cpu_ids():
    require_faiss_gpu()
    x = blobs()
    cpu = faiss_kmeans_assign(x, 10, niter=20, seed=0, gpu=False)
    gpu = faiss_kmeans_assign(x, 10, niter=20, seed=0, gpu=True)
    assert cpu.shape == gpu.shape == (len(x), ) and cpu.dtype == gpu.dtype == np.int64
    assert np.array_equal(cpu, gpu), f'{int((cpu != gpu).sum())} of {len(x)} ids differ'
    # and the same seed on the GPU repeats itself
    assert np.array_equal(gpu, faiss_kmeans_assign(x, 10, niter=20, seed=0, gpu=True))
