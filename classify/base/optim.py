"""Optimisers over parameter groups, and freezing parameters by name, for both trainers.

:func:`param_groups` applies weight decay to weight matrices and convolution kernels only, never
to parameters with fewer than 2 dimensions (biases, normalisation scales, per-channel
coefficients), and can split off a classifier head with its own learning-rate scale;
:func:`build_optimizer` sets each group's lr to ``lr * lr_scale``.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable
from typing import Any

import torch
from torch import nn

__all__ = ["NORM_TYPES", "OPTIMIZERS", "build_optimizer", "freeze_by_prefix", "param_groups"]

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
#: module types whose parameters are a normalisation's scale and shift
NORM_TYPES: tuple[type[nn.Module], ...] = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm,
                                           nn.modules.instancenorm._InstanceNorm, nn.LocalResponseNorm)


def param_groups(model: nn.Module, weight_decay: float, *, decay_all: bool = False,
                 head: Collection[nn.Parameter] = (), backbone_lr_scale: float = 1.0) -> list[dict[str, Any]]:
    """The trainable parameters in optimiser groups, by part and by decay.

    Parts: with ``head`` (the classifier's parameters), ``head`` (``lr_scale`` 1) then the rest
    (``lr_scale`` ``backbone_lr_scale``); without, one part. Within a part, the parameters with
    weight decay, then those without (fewer than 2 dims, unless ``decay_all``). Frozen parameters
    are left out and empty groups dropped. Each group has ``name`` (``head/decay``... or
    ``decay``/``no_decay``), ``params``, ``weight_decay`` and ``lr_scale``.

    Raises ``ValueError`` when nothing is trainable.
    """
    head_ids = {id(p) for p in head}
    parts = [("head/", 1.0), ("backbone/", backbone_lr_scale)] if head_ids else [("", 1.0)]
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {(part, decays): [] for part, _ in parts
                                                          for decays in (True, False)}
    for p in model.parameters():
        if p.requires_grad:
            part = ("head/" if id(p) in head_ids else "backbone/") if head_ids else ""
            groups[(part, decay_all or p.dim() >= 2)].append(p)
    scales = dict(parts)
    out = [{"name": part + ("decay" if decays else "no_decay"), "params": params,
            "weight_decay": weight_decay if decays else 0.0, "lr_scale": scales[part]}
           for (part, decays), params in groups.items() if params]
    if not out:
        raise ValueError("the model has no trainable parameters (is everything frozen?)")
    return out


def build_optimizer(groups: list[dict[str, Any]], name: str, lr: float, momentum: float = 0.9,
                    beta2: float = 0.999, nesterov: bool = False) -> torch.optim.Optimizer:
    """``sgd``, ``adam``, ``adamw`` or ``rmsprop`` over ``groups``; each group's lr is
    ``lr * lr_scale``. ``momentum`` is SGD's and RMSProp's momentum and Adam's/AdamW's beta1."""
    groups = [dict(g, lr=lr * g.get("lr_scale", 1.0)) for g in groups]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=(momentum, beta2))
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=(momentum, beta2))
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, momentum=momentum, alpha=0.9, eps=1e-3)
    raise ValueError(f"optimizer: expected one of {', '.join(OPTIMIZERS)}, got {name!r}")


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
