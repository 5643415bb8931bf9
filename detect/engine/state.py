"""The resumable state of a training run: counters, timers, best score, history, RNG states.

Everything here is plain numbers, strings, lists, dicts and tensors, so it is stored in a
checkpoint's ``extra`` and read back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from detect.engine.loop import LossMeter


@dataclass
class RunState:
    """Where a run stands.

    Attributes:
        epoch: the epoch in progress, 0-based.
        batch_in_epoch: batches of that epoch already trained.
        iteration: optimiser steps of the whole run.
        train_minutes: minutes spent training (validation and saving excluded), all sessions.
        wall_minutes: minutes since the run started, all sessions.
        best_value: best validation ``best_metric`` so far (``None``: not validated yet).
        best_epoch: 1-based epoch of ``best_value``.
        history: one row per epoch (see :mod:`detect.engine.history`).
        meter: loss sums of the epoch in progress.
    """

    epoch: int = 0
    batch_in_epoch: int = 0
    iteration: int = 0
    train_minutes: float = 0.0
    wall_minutes: float = 0.0
    best_value: float | None = None
    best_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    meter: LossMeter = field(default_factory=LossMeter)

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "meter"}
        return {**data, "meter": self.meter.state_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunState:
        meter = LossMeter()
        meter.load_state_dict(data["meter"])
        fields = {k: v for k, v in data.items() if k != "meter"}
        return cls(**fields, meter=meter)

    def next_epoch(self) -> None:
        """Mark the epoch in progress as complete."""
        self.epoch, self.batch_in_epoch, self.meter = self.epoch + 1, 0, LossMeter()


def capture_rng(cuda: bool = False) -> dict[str, Any]:
    """The states of torch's CPU (and CUDA) generators, Python's ``random`` and numpy's legacy one."""
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


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), Python's ``random`` and numpy's legacy generator."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
