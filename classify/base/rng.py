"""Seeding and the random-number state of a training run, so a stopped run resumes exactly."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

__all__ = ["capture_rng", "derived_seed", "restore_rng", "seed_everything"]


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), Python's ``random`` and numpy's legacy generator."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def derived_seed(*words: int) -> int:
    """A 63-bit seed derived from ``words`` (e.g. run seed, epoch, stream)."""
    return int(np.random.SeedSequence(list(words)).generate_state(2, np.uint64)[0] >> 1)


def capture_rng(cuda: bool = False) -> dict[str, Any]:
    """The states of torch's CPU (and CUDA) generators, Python's ``random`` and numpy's legacy one,
    as tensors and plain values (storable in a checkpoint read with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
    }
    if cuda:
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Put back what :func:`capture_rng` captured."""
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
