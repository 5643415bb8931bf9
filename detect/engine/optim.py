"""Optimiser pieces of detector training: parameter groups, the per-iteration LR schedule, EMA
of the weights, and freezing parameters by name prefix.

* :func:`param_groups` puts norm-layer weights and all biases in a group without weight decay.
* :class:`LRSchedule` is the LR factor of iteration ``i`` (0-based): a linear warm-up from
  ``warmup_factor`` to 1 over ``warmup_iters``, times a step, cosine or constant decay over
  ``total_iters``. Used with ``torch.optim.lr_scheduler.LambdaLR`` stepped once per iteration.
* :class:`ModelEMA` keeps ``ema = d * ema + (1 - d) * weights`` for every floating-point
  parameter; buffers (BN running statistics, counters) are copied.
"""

from __future__ import annotations

import copy
import difflib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

#: Module types whose weights are not decayed (scale/shift of a normalisation).
NORM_TYPES: tuple[type[nn.Module], ...] = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm,
                                           nn.modules.instancenorm._InstanceNorm, nn.LocalResponseNorm)


# ----------------------------------------------------------------------------- parameter groups


def no_decay_names(model: nn.Module) -> set[str]:
    """Names of the parameters that get no weight decay: norm-layer parameters and biases."""
    names = set()
    for module_name, module in model.named_modules():
        for param_name, _ in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            if isinstance(module, NORM_TYPES) or param_name == "bias":
                names.add(full)
    return names


def param_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool = False) -> list[dict[str, Any]]:
    """Trainable parameters in up to two optimiser groups, ``"decay"`` then ``"no_decay"``.

    Frozen parameters (``requires_grad`` off) are left out; empty groups are dropped. Each group
    carries a ``"name"`` key (optimisers keep unknown keys).
    """
    skip = set() if decay_norm_and_bias else no_decay_names(model)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if name in skip else decay).append(p)
    groups = [{"name": "decay", "params": decay, "weight_decay": weight_decay},
              {"name": "no_decay", "params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError("the model has no trainable parameters (all frozen); freeze fewer prefixes")
    return groups


def build_optimizer(model: nn.Module, name: Literal["sgd", "adamw"], lr: float, weight_decay: float,
                    momentum: float = 0.9, beta2: float = 0.999,
                    decay_norm_and_bias: bool = False) -> torch.optim.Optimizer:
    """SGD (Nesterov off) or AdamW over :func:`param_groups`; ``momentum`` is AdamW's beta1."""
    groups = param_groups(model, weight_decay, decay_norm_and_bias)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=(momentum, beta2), weight_decay=weight_decay)
    raise ValueError(f"optimizer: expected 'sgd' or 'adamw', got {name!r}")


# ----------------------------------------------------------------------------- LR schedule


@dataclass(frozen=True)
class LRSchedule:
    """LR multiplier of each iteration (call it with the 0-based iteration).

    Attributes:
        total_iters: iterations of the whole run (the cosine reaches ``min_ratio`` there).
        warmup_iters: linear warm-up length; factor ``warmup_factor`` at 0, 1 at ``warmup_iters``.
        kind: ``"step"`` (times ``gamma`` at each milestone), ``"cosine"`` or ``"constant"``.
        milestones: step schedule: iterations where the factor is multiplied by ``gamma``.
        min_ratio: cosine schedule: the factor at ``total_iters``.
    """

    total_iters: int
    warmup_iters: int = 0
    warmup_factor: float = 0.001
    kind: Literal["step", "cosine", "constant"] = "step"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    min_ratio: float = 0.0

    def __post_init__(self) -> None:
        if self.total_iters < 1:
            raise ValueError(f"LRSchedule.total_iters: expected >= 1, got {self.total_iters}")
        if self.kind not in ("step", "cosine", "constant"):
            raise ValueError(f"LRSchedule.kind: expected 'step', 'cosine' or 'constant', got {self.kind!r}")

    def __call__(self, iteration: int) -> float:
        return self.warmup(iteration) * self.decay(iteration)

    def warmup(self, iteration: int) -> float:
        """``warmup_factor`` rising linearly to 1 at ``warmup_iters``; 1 afterwards."""
        if iteration >= self.warmup_iters:
            return 1.0
        alpha = iteration / self.warmup_iters
        return self.warmup_factor * (1.0 - alpha) + alpha

    def decay(self, iteration: int) -> float:
        """The schedule without warm-up."""
        if self.kind == "step":
            return self.gamma ** sum(iteration >= m for m in self.milestones)
        if self.kind == "cosine":
            progress = min(iteration, self.total_iters) / self.total_iters
            return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0


def milestone_iterations(fractions: Sequence[float], total_iters: int) -> tuple[int, ...]:
    """Milestones given as fractions of the run -> iteration numbers (rounded)."""
    return tuple(round(f * total_iters) for f in fractions)


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: LRSchedule) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR`` over ``schedule``; step it once after every optimiser step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


# ----------------------------------------------------------------------------- EMA


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


# ----------------------------------------------------------------------------- freezing


def freeze_by_prefix(model: nn.Module, prefixes: Iterable[str]) -> list[str]:
    """Turn ``requires_grad`` off for parameters whose name starts with one of ``prefixes``.

    Norm layers whose parameters are all frozen are kept in eval mode (running statistics
    frozen too) by a forward pre-hook, so ``model.train()`` does not thaw them.

    Returns the frozen parameter names. Raises ``ValueError`` for a prefix that matches no
    parameter, suggesting close names.
    """
    prefixes = tuple(prefixes)
    names = [n for n, _ in model.named_parameters()]
    for prefix in prefixes:
        if not any(n.startswith(prefix) for n in names):
            roots = sorted({".".join(n.split(".")[:k]) for n in names for k in range(1, 4)})
            close = difflib.get_close_matches(prefix, roots, n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise ValueError(f"freeze: prefix {prefix!r} matches no parameter of the model{hint} "
                             f"(top-level modules: {sorted({n.split('.')[0] for n in names})})")
    frozen = []
    for name, p in model.named_parameters():
        if name.startswith(prefixes):
            p.requires_grad_(False)
            frozen.append(name)
    for module in model.modules():
        params = list(module.parameters(recurse=False))
        if isinstance(module, NORM_TYPES) and params and not any(p.requires_grad for p in params):
            module.register_forward_pre_hook(_keep_eval)
    return frozen


def _keep_eval(module: nn.Module, inputs: Any) -> None:
    module.train(False)
