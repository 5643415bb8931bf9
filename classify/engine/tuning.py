"""Fine-tuning a zoo classifier: its head, a frozen backbone, dropout and batch-norm momentum.

The classifier layers (``model.classifier_paths``) form the head; with ``freeze_backbone`` only
they train (:func:`freeze_backbone`) and :func:`set_train_mode` keeps the backbone in eval mode
(a fixed feature extractor). Optimiser groups (the head with the full lr, the backbone with
``lr * backbone_lr_scale``) and schedules are :mod:`classify.base.optim` and
:mod:`classify.base.schedule`.
"""

from __future__ import annotations

from torch import nn

from classify.models.features import Backbone

__all__ = ["freeze_backbone", "head_modules", "head_parameters", "set_bn_momentum", "set_drop_rate",
           "set_train_mode"]


def head_modules(model: Backbone) -> list[nn.Module]:
    """The classifier layers of ``model`` (main and auxiliary heads)."""
    return [model.get_submodule(path) for path in model.classifier_paths]


def head_parameters(model: Backbone) -> list[nn.Parameter]:
    """The parameters of the classifier layers."""
    return [p for m in head_modules(model) for p in m.parameters()]


def _head_param_ids(model: Backbone) -> set[int]:
    return {id(p) for p in head_parameters(model)}


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
