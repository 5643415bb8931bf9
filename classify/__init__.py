"""classify: the CNN backbone zoo shared by classification and detection.

Public API (imported lazily, so ``import classify`` does not import torch)::

    get_model(name, num_classes=None, weights=None, in_chans=None, **kw) -> Backbone
    list_models(pattern="") -> list[str]
    get_model_entry(name) -> ModelEntry      # input sizes, normalisation, packaged weights
    register_model(...)                       # decorator adding a builder to the registry
    Backbone, FeatureInfo                     # the contract (see classify.models.features)
    AuxOutputs, classification_loss           # training outputs with auxiliary heads
    load_weights(model, path), LoadReport     # strict loading of local state dicts
    efficientnet_lite0_weights_path()         # the packaged ImageNet EfficientNet-Lite0 file

This package never imports ``detect``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from classify.models.efficientnet_lite import efficientnet_lite0_weights_path
    from classify.models.features import Backbone, FeatureInfo
    from classify.models.outputs import AuxOutputs, classification_loss
    from classify.models.registry import (
        ModelEntry,
        get_model,
        get_model_entry,
        list_models,
        register_model,
    )
    from classify.models.weights import LoadReport, load_weights

_LAZY = {
    "Backbone": "classify.models.features",
    "FeatureInfo": "classify.models.features",
    "AuxOutputs": "classify.models.outputs",
    "classification_loss": "classify.models.outputs",
    "ModelEntry": "classify.models.registry",
    "get_model": "classify.models.registry",
    "get_model_entry": "classify.models.registry",
    "list_models": "classify.models.registry",
    "register_model": "classify.models.registry",
    "LoadReport": "classify.models.weights",
    "load_weights": "classify.models.weights",
    "efficientnet_lite0_weights_path": "classify.models.efficientnet_lite",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'classify' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
