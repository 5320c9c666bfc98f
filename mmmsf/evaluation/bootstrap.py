"""Paired bootstrap confidence interval of an accuracy gain over the same test images.

Two classifiers scored on the same N test images give per-image correctness vectors ``a`` and
``b``. The gain is ``mean(a) - mean(b)`` (in points of %). Resampling the *images* with
replacement (the same resampled images for both, hence "paired") B times and taking the
percentiles of the resampled gains gives the interval (Efron & Tibshirani, 1993, ch. 13): it
accounts for the two classifiers erring on the same hard images, which two separate intervals
do not, and is what decides whether a gain is beyond the test set's sampling noise.
"""
from typing import Dict, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor, list]


def _as_vector(x: ArrayLike, name: str) -> np.ndarray:
    x = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f'{name} must be a non-empty 1-D per-image correctness vector, got '
                         f'shape {x.shape}.')
    return x.astype(np.float64)


def paired_bootstrap(correct_a: ArrayLike, correct_b: ArrayLike, num_samples: int = 10000,
                     confidence: float = 0.95, seed: int = 0,
                     chunk: int = 500) -> Dict[str, float]:
    """Gain of ``a`` over ``b`` (points of %) with a percentile bootstrap interval.

    Args:
        correct_a, correct_b: per-test-image correctness (bool or 0/1) of the two classifiers,
            in the same image order.
        num_samples: bootstrap resamples B.
        confidence: coverage of the two-sided interval (0.95: 2.5th-97.5th percentiles).
        seed: the resampling is deterministic for a seed.
    Returns:
        ``dict(gain, low, high, confidence, num_images, num_samples)``.
    """
    a, b = _as_vector(correct_a, 'correct_a'), _as_vector(correct_b, 'correct_b')
    if len(a) != len(b):
        raise ValueError(f'paired bootstrap needs the same test images for both: {len(a)} vs '
                         f'{len(b)} results.')
    if not 0 < confidence < 1:
        raise ValueError(f'confidence must lie in (0, 1), got {confidence}.')
    diff = 100.0 * (a - b)
    rng = np.random.default_rng(seed)
    gains = []
    for start in range(0, num_samples, chunk):
        idx = rng.integers(0, len(diff), size=(min(chunk, num_samples - start), len(diff)))
        gains.append(diff[idx].mean(axis=1))
    gains = np.concatenate(gains)
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(gains, [alpha, 1.0 - alpha])
    return dict(gain=float(diff.mean()), low=float(low), high=float(high),
                confidence=confidence, num_images=len(diff), num_samples=num_samples)
