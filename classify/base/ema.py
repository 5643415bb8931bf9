"""Exponential moving average of a model's weights (the detector trainer's ``ema``)."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

__all__ = ["ModelEMA"]


class ModelEMA:
    """Exponential moving average of a model's weights.

    After each optimiser step, :meth:`update` sets, for every floating-point parameter,
    ``ema = d * ema + (1 - d) * param`` with ``d = decay * (1 - exp(-updates / tau))`` (``tau``
    0: ``d = decay``), ``updates`` counting the calls; buffers (BN running statistics) and
    integer tensors are copied. ``module`` is the averaged copy, in eval mode, without grads.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9998, tau: float = 0.0) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay: expected a value in (0, 1), got {decay}")
        if tau < 0:
            raise ValueError(f"EMA tau: expected >= 0 iterations, got {tau}")
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay, self.tau, self.updates = decay, tau, 0

    def decay_at(self, updates: int) -> float:
        """The decay used by the ``updates``-th update (1-based)."""
        if self.tau == 0:
            return self.decay
        return self.decay * (1.0 - math.exp(-updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend ``model``'s current weights into the average (same architecture)."""
        self.updates += 1
        d = self.decay_at(self.updates)
        for ema_p, p in zip(self.module.parameters(), model.parameters(), strict=True):
            ema_p.lerp_(p.detach(), 1.0 - d)
        for ema_b, b in zip(self.module.buffers(), model.buffers(), strict=True):
            ema_b.copy_(b)

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
