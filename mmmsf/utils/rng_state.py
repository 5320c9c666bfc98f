"""The global random states of Python, NumPy and torch: read, restore, keep across a block.

One home for the three users: checkpoints (:class:`~mmmsf.engine.hooks.RandomStateHook`), the
kNN validation, which must not move the trainer's streams, and the per-sample seeding of the
augmentations in the main process (:func:`~mmmsf.datasets.sample_seed.seeded_random`, CPU
generators only).
"""
import contextlib
import random
from typing import Iterator, Tuple

import numpy as np
import torch


def get_rng_state(cuda: bool = True) -> Tuple:
    """(Python, NumPy, torch CPU, torch CUDA or None) states, as the libraries return them."""
    return (random.getstate(), np.random.get_state(), torch.get_rng_state(),
            torch.cuda.get_rng_state_all() if cuda and torch.cuda.is_available() else None)


def set_rng_state(state: Tuple) -> None:
    """Restore a :func:`get_rng_state` result (CUDA only where it was read)."""
    py, nps, cpu, cuda = state
    random.setstate(py)
    np.random.set_state(nps)
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


@contextlib.contextmanager
def preserved_rng_state(cuda: bool = True) -> Iterator[None]:
    """Restore the Python, NumPy and torch (CPU, and CUDA with ``cuda``) states on exit."""
    state = get_rng_state(cuda)
    try:
        yield
    finally:
        set_rng_state(state)


def rng_state_dict() -> dict:
    """The states as a checkpoint entry: plain Python values and tensors only, so the
    checkpoint loads with ``weights_only=True``."""
    name, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    return dict(
        python=random.getstate(),
        numpy=(str(name), [int(k) for k in keys], int(pos), int(has_gauss), float(gauss)),
        torch=torch.get_rng_state(),
        cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])


def load_rng_state_dict(state: dict) -> None:
    """Restore the states of a :func:`rng_state_dict` entry."""
    random.setstate(state['python'])
    name, keys, pos, has_gauss, gauss = state['numpy']
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state['torch'])
    if state.get('cuda') and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
