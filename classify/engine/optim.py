"""Optimisers, parameter groups and per-iteration learning-rate schedules for classifier training.

Parameter groups (:func:`param_groups`): the classifier layers (``model.classifier_paths``) get
the full ``lr``; the backbone gets ``lr * backbone_lr_scale`` (fine-tuning a pretrained model
with a lower backbone rate).  Weight decay is applied to weight matrices and convolution kernels
only, never to biases or normalisation weights (any parameter with fewer than 2 dimensions).
With ``freeze_backbone`` only the classifier is trained (:func:`freeze_backbone`), and
:func:`set_train_mode` keeps the backbone in eval mode (a fixed feature extractor).

Schedules (:class:`LRFactor`, the factor applied to each group's base lr at iteration ``i``):

* ``constant``, ``step`` (times ``gamma`` every ``step_iters``), ``cosine`` (from 1 down to
  ``min_lr_ratio``), each after an optional linear warm-up from ``warmup_factor`` to 1;
* ``onecycle`` (Smith & Topin, 2018; the curve of ``torch.optim.lr_scheduler.OneCycleLR`` with
  its defaults): cosine rise from 1/25 to 1 over the warm-up (30% of the run by default), then
  cosine fall to 1/25e4 at the last iteration.  Momentum is not cycled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from classify.models.features import Backbone

__all__ = [
    "LRFactor", "build_optimizer", "build_scheduler", "freeze_backbone", "head_modules",
    "param_groups", "set_bn_momentum", "set_drop_rate", "set_train_mode",
]

ONECYCLE_START = 1 / 25  # OneCycleLR's default div_factor
ONECYCLE_END = 1 / 25e4  # div_factor * final_div_factor
ONECYCLE_RISE = 0.3  # pct_start


def head_modules(model: Backbone) -> list[nn.Module]:
    """The classifier layers of ``model`` (main and auxiliary heads)."""
    return [model.get_submodule(path) for path in model.classifier_paths]


def _head_param_ids(model: Backbone) -> set[int]:
    return {id(p) for m in head_modules(model) for p in m.parameters()}


def freeze_backbone(model: Backbone) -> int:
    """Turn off gradients of every parameter outside the classifier; returns how many remain."""
    head = _head_param_ids(model)
    for p in model.parameters():
        p.requires_grad_(id(p) in head)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def set_train_mode(model: Backbone, frozen_backbone: bool) -> None:
    """``model.train()``; with a frozen backbone, the backbone in eval mode (batch-norm running
    statistics fixed, stochastic depth off) and only the classifier layers and the dropout
    layers in training mode."""
    if not frozen_backbone:
        model.train()
        return
    model.eval()
    for module in head_modules(model):
        module.train()
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.train()


def set_drop_rate(model: nn.Module, rate: float) -> int:
    """Set ``p`` of every ``nn.Dropout`` in ``model``; returns how many layers were changed.

    Raises ``ValueError`` for models without a dropout layer (LeNet-5, ResNets, ...).
    """
    layers = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    if not layers:
        raise ValueError(f"drop_rate={rate}: {type(model).__name__} has no dropout layer to set; "
                         f"leave drop_rate unset (null) for this model")
    for layer in layers:
        layer.p = rate
    return len(layers)


def set_bn_momentum(model: nn.Module, momentum: float) -> int:
    """Set the running-statistics momentum of every batch-norm layer; returns how many changed.

    A model ported from TensorFlow (EfficientNet-Lite0: 0.01) updates its running statistics
    slowly; on a few hundred images they then never reach the data's, and an evaluation in eval
    mode sees wrong statistics. PyTorch's default is 0.1.
    """
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not layers:
        raise ValueError(f"bn_momentum={momentum}: {type(model).__name__} has no batch-norm "
                         f"layer; leave bn_momentum unset (null) for this model")
    for layer in layers:
        layer.momentum = momentum
    return len(layers)


def param_groups(model: Backbone, weight_decay: float, backbone_lr_scale: float = 1.0,
                 decay_all: bool = False) -> list[dict[str, Any]]:
    """Trainable parameters split into head/backbone x decay/no-decay groups.

    Each group carries ``lr_scale`` (1 for the head, ``backbone_lr_scale`` for the backbone) and
    its ``weight_decay`` (0 for parameters with fewer than 2 dims unless ``decay_all``).
    Empty groups are left out.
    """
    head = _head_param_ids(model)
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for p in model.parameters():
        if p.requires_grad:
            key = (id(p) in head, decay_all or p.dim() >= 2)
            groups.setdefault(key, []).append(p)
    return [{"params": params, "lr_scale": 1.0 if is_head else backbone_lr_scale,
             "weight_decay": weight_decay if decays else 0.0}
            for (is_head, decays), params in sorted(groups.items(), reverse=True)]


def build_optimizer(groups: list[dict[str, Any]], name: str, lr: float, momentum: float = 0.9,
                    nesterov: bool = False) -> torch.optim.Optimizer:
    """``sgd``, ``adam``, ``adamw`` or ``rmsprop`` over ``groups``; group lr = lr * lr_scale.

    ``momentum`` is SGD's and RMSProp's momentum and Adam's/AdamW's beta1.
    """
    if not any(g["params"] for g in groups):
        raise ValueError("the optimiser has no trainable parameters (is everything frozen?)")
    groups = [dict(g, lr=lr * g["lr_scale"]) for g in groups]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=(momentum, 0.999))
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=(momentum, 0.999))
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, momentum=momentum, alpha=0.9, eps=1e-3)
    raise ValueError(f"optimizer must be one of sgd, adam, adamw, rmsprop; got {name!r}")


@dataclass
class LRFactor:
    """The lr factor at iteration ``i`` (0-based) of ``total`` (see the module docstring).

    A plain-data callable, so ``LambdaLR.state_dict()`` stores it and a resumed run rebuilds it.
    """

    schedule: str
    total: int
    warmup: int = 0
    warmup_factor: float = 0.1
    step_iters: int = 1
    gamma: float = 0.1
    min_ratio: float = 0.0

    def __post_init__(self) -> None:
        if self.schedule not in ("constant", "step", "cosine", "onecycle"):
            raise ValueError(f"schedule must be constant, step, cosine or onecycle; got {self.schedule!r}")
        if self.total < 1 or self.warmup < 0 or self.step_iters < 1:
            raise ValueError(f"LRFactor: need total >= 1, warmup >= 0, step_iters >= 1; got "
                             f"{self.total}, {self.warmup}, {self.step_iters}")

    def __call__(self, i: int) -> float:
        if self.schedule == "onecycle":
            return self._onecycle(i)
        if i < self.warmup:
            return self.warmup_factor + (1 - self.warmup_factor) * i / self.warmup
        if self.schedule == "step":
            return self.gamma ** (i // self.step_iters)
        if self.schedule == "cosine":
            t = min((i - self.warmup) / max(self.total - self.warmup, 1), 1.0)
            return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * t))
        return 1.0

    def _onecycle(self, i: int) -> float:
        # OneCycleLR's convention: the peak is reached at iteration rise - 1, the end at total - 1
        peak = (self.warmup or ONECYCLE_RISE * self.total) - 1
        if i <= peak:
            return _cosine_between(ONECYCLE_START, 1.0, i / peak if peak > 0 else 1.0)
        t = min((i - peak) / max(self.total - 1 - peak, 1e-9), 1.0)
        return _cosine_between(1.0, ONECYCLE_END, t)


def _cosine_between(start: float, end: float, t: float) -> float:
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * t))


def build_scheduler(optimizer: torch.optim.Optimizer, factor: LRFactor) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` applying ``factor`` to every group; call ``step()`` after every iteration."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
