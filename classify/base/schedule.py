"""Per-iteration learning-rate schedules, for the classifier and detector trainers alike.

:class:`LRSchedule` is the factor applied to every parameter group's base lr at iteration ``i``
(0-based); it is a plain-data callable, so ``LambdaLR.state_dict()`` stores it and a resumed run
rebuilds it. Kinds:

* ``constant``, ``step`` (times ``gamma`` at each milestone iteration), ``cosine`` (from 1 down
  to ``min_ratio`` at ``total_iters``), each with an optional linear warm-up from
  ``warmup_factor`` to 1 over ``warmup_iters``. Two conventions for the warm-up exist and both are
  kept: with ``warmup_prefix`` (timm's) the warm-up comes first and the cosine starts when it
  ends; without it (detectron2's) the warm-up factor multiplies a schedule that spans the whole run.
* ``onecycle`` (Smith & Topin, 2018; the curve of ``torch.optim.lr_scheduler.OneCycleLR`` with
  its defaults): cosine rise from 1/25 to 1 over the warm-up (30% of the run by default), then
  cosine fall to 1/25e4 at the last iteration.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

__all__ = ["LRSchedule", "SCHEDULES", "build_scheduler", "milestone_iterations"]

SCHEDULES = ("constant", "step", "cosine", "onecycle")
ONECYCLE_START = 1 / 25  # OneCycleLR's default div_factor
ONECYCLE_END = 1 / 25e4  # div_factor * final_div_factor
ONECYCLE_RISE = 0.3  # pct_start


@dataclass(frozen=True)
class LRSchedule:
    """LR multiplier of each iteration (call it with the 0-based iteration).

    Attributes:
        total_iters: iterations of the whole run.
        warmup_iters: linear warm-up length (onecycle: the rise; 0 there means 30% of the run).
        warmup_factor: the factor at iteration 0 of the warm-up.
        kind: ``constant``, ``step``, ``cosine`` or ``onecycle``.
        milestones: step schedule: iterations from which the factor is multiplied by ``gamma``.
        gamma: step schedule: the factor per milestone.
        min_ratio: cosine schedule: the factor at ``total_iters``.
        warmup_prefix: the cosine starts after the warm-up instead of spanning the whole run
            under it (see the module docstring).
    """

    total_iters: int
    warmup_iters: int = 0
    warmup_factor: float = 0.001
    kind: Literal["constant", "step", "cosine", "onecycle"] = "step"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    min_ratio: float = 0.0
    warmup_prefix: bool = False

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"LRSchedule.kind: expected one of {', '.join(SCHEDULES)}, got {self.kind!r}")
        if self.total_iters < 1 or self.warmup_iters < 0:
            raise ValueError(f"LRSchedule: expected total_iters >= 1 and warmup_iters >= 0, got "
                             f"{self.total_iters} and {self.warmup_iters}")

    def __call__(self, iteration: int) -> float:
        if self.kind == "onecycle":
            return self._onecycle(iteration)
        if self.warmup_prefix and iteration < self.warmup_iters:
            return self.warmup(iteration)
        return self.warmup(iteration) * self.decay(iteration)

    def warmup(self, iteration: int) -> float:
        """``warmup_factor`` rising linearly to 1 at ``warmup_iters``; 1 afterwards (each convention
        with its own arithmetic, so runs of either reproduce to the last bit)."""
        if iteration >= self.warmup_iters:
            return 1.0
        if self.warmup_prefix:  # timm: up from warmup_factor in equal steps
            return self.warmup_factor + (1.0 - self.warmup_factor) * iteration / self.warmup_iters
        alpha = iteration / self.warmup_iters  # detectron2: interpolation
        return self.warmup_factor * (1.0 - alpha) + alpha

    def decay(self, iteration: int) -> float:
        """The schedule without warm-up."""
        if self.kind == "step":
            return self.gamma ** bisect.bisect_right(self.milestones, iteration)
        if self.kind == "cosine":
            start = self.warmup_iters if self.warmup_prefix else 0
            progress = min(max(iteration - start, 0) / max(self.total_iters - start, 1), 1.0)
            return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    def _onecycle(self, iteration: int) -> float:
        # OneCycleLR's convention: the peak is reached at iteration rise - 1, the end at total - 1
        peak = (self.warmup_iters or ONECYCLE_RISE * self.total_iters) - 1
        if iteration <= peak:
            return _cosine_between(ONECYCLE_START, 1.0, iteration / peak if peak > 0 else 1.0)
        t = min((iteration - peak) / max(self.total_iters - 1 - peak, 1e-9), 1.0)
        return _cosine_between(1.0, ONECYCLE_END, t)


def _cosine_between(start: float, end: float, t: float) -> float:
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * t))


def milestone_iterations(fractions: Sequence[float], total_iters: int) -> tuple[int, ...]:
    """Milestones given as fractions of the run -> iteration numbers (rounded)."""
    return tuple(round(f * total_iters) for f in fractions)


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: LRSchedule) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR`` applying ``schedule`` to every group; step it once after every optimiser step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
