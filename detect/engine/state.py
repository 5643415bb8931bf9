"""The resumable state of a training run: counters, timers, best score, history, loss log.

Everything here is plain numbers, strings, lists, dicts and tensors, so it is stored in a
checkpoint's ``extra`` and read back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from detect.engine.loop import LossMeter

_METERS = ("meter", "window")


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
        history: one row per epoch or evaluation (see :mod:`detect.engine.trainer`).
        meter: loss sums of the epoch in progress.
        loss_log: mean losses over every ``every`` iterations (``iteration``, ``minutes``, ``loss``,
            ``loss_*``): the training curve by iteration, also for runs shorter than an epoch.
        window: loss sums since the last ``loss_log`` row.
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
    loss_log: list[dict[str, float]] = field(default_factory=list)
    window: LossMeter = field(default_factory=LossMeter)

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k not in _METERS}
        return {**data, **{k: getattr(self, k).state_dict() for k in _METERS}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunState:
        """The state :meth:`to_dict` wrote (checkpoints from before the loss log load with an empty one)."""
        meters = {k: LossMeter() for k in _METERS}
        for key, meter in meters.items():
            if key in data:
                meter.load_state_dict(data[key])
        return cls(**{k: v for k, v in data.items() if k not in _METERS}, **meters)

    def log_losses(self, losses: dict[str, float], iteration: int, every: int, minutes: float) -> None:
        """Add the ``losses`` of the run's ``iteration``-th step (1-based); at every multiple of
        ``every``, append the window's means to :attr:`loss_log`."""
        self.window.add(losses)
        if iteration % every == 0:
            self.loss_log.append({"iteration": iteration, "minutes": minutes, **self.window.means()})
            self.window = LossMeter()

    def next_epoch(self) -> None:
        """Mark the epoch in progress as complete."""
        self.epoch, self.batch_in_epoch, self.meter = self.epoch + 1, 0, LossMeter()
