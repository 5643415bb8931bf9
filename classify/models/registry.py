"""Model registry: ``@register_model`` fills a plain dict; ``get_model`` builds by name.

    >>> from classify import get_model, list_models
    >>> model = get_model("resnet18", num_classes=10, in_chans=1)
    >>> model.feature_info[-1]
    FeatureInfo(name='layer4', channels=512, stride=32)

Builders are registered when their module is imported; :func:`list_models` and
:func:`get_model` import the zoo modules on first use, so ``import classify`` stays cheap.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from classify.models.features import Backbone

__all__ = ["ModelEntry", "get_model", "get_model_entry", "list_models", "register_model"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: modules whose import registers the zoo (in display order)
ZOO_MODULES = (
    "classify.models.lenet",
    "classify.models.alexnet",
    "classify.models.zfnet",
    "classify.models.vgg",
    "classify.models.googlenet",
    "classify.models.inception",
    "classify.models.resnet",
    "classify.models.densenet",
    "classify.models.mobilenet_v1",
    "classify.models.mobilenet",
    "classify.models.shufflenet",
    "classify.models.efficientnet",
    "classify.models.efficientnet_lite",
    "classify.models.convnext",
)

Builder = Callable[..., "Backbone"]


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows about one model.

    ``builder(num_classes=..., in_chans=..., **kw)`` returns the model.  ``input_size`` is the
    native (ImageNet / paper) square input in pixels; ``min_input_size`` the smallest square
    input for which ``model(x)`` runs, in train and eval mode, with the default options, and
    never below the largest feature stride (so the deepest map covers at least one cell).
    ``mean``/``std`` normalise an RGB image scaled to [0, 1].  ``weights`` maps a tag such as
    ``"imagenet"`` to a function returning the local checkpoint path.
    """

    name: str
    builder: Builder
    min_input_size: int
    input_size: int = 224
    in_chans: int = 3
    num_classes: int = 1000
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    weights: Mapping[str, Callable[[], Path]] = field(default_factory=dict)
    paper: str = ""


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str | None = None, *, min_input_size: int, **info: Any
) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder`` under ``name`` (default: the function's name).

    Extra keyword arguments fill the other :class:`ModelEntry` fields.
    """

    def decorate(builder: Builder) -> Builder:
        key = name or builder.__name__
        if key in _REGISTRY and _REGISTRY[key].builder is not builder:
            raise ValueError(f"register_model: {key!r} is already registered "
                             f"by {_REGISTRY[key].builder.__module__}")
        weights = MappingProxyType(dict(info.pop("weights", {})))
        _REGISTRY[key] = ModelEntry(key, builder, min_input_size, weights=weights, **info)
        return builder

    return decorate


def _load_zoo() -> None:
    for module in ZOO_MODULES:
        importlib.import_module(module)


def list_models(pattern: str = "") -> list[str]:
    """Registered model names, in zoo order; ``pattern`` keeps names containing it."""
    _load_zoo()
    return [n for n in _REGISTRY if pattern in n]


def get_model_entry(name: str) -> ModelEntry:
    """The :class:`ModelEntry` of ``name``; unknown names raise ``ValueError`` with hints."""
    _load_zoo()
    if not isinstance(name, str):
        raise TypeError(f"model name must be a str, got {type(name).__name__}")
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"unknown model {name!r}{hint} (classify.list_models() lists all {len(_REGISTRY)})"
        )
    return _REGISTRY[name]


def get_model(
    name: str,
    num_classes: int | None = None,
    weights: str | Path | None = None,
    in_chans: int | None = None,
    **kwargs: Any,
) -> Backbone:
    """Build the model registered as ``name``.

    Args:
        name: a name from :func:`list_models`.
        num_classes: logits per image; ``None`` means the model's native count (1000 for the
            ImageNet models, 10 for LeNet-5); ``0`` gives a head returning pre-logits features.
        weights: ``None`` (random init), a path to a local state dict / checkpoint (torchvision
            layout or this zoo's), or a tag of the entry's packaged weights (``"imagenet"`` for
            ``efficientnet_lite0``).  If ``num_classes`` differs from the checkpoint's, every
            layer but the classifier is loaded and the classifier keeps its fresh init.
        in_chans: input channels; ``None`` means the native count (1 for LeNet-5, else 3).
            A different count rebuilds the stem convolution (adapting checkpoint weights).
        **kwargs: model-specific options, passed to the builder (e.g. ``aux_logits=False``).
    """
    from classify.models.weights import load_weights  # deferred: keeps `import classify` light

    entry = get_model_entry(name)
    num_classes = entry.num_classes if num_classes is None else num_classes
    in_chans = entry.in_chans if in_chans is None else in_chans
    _check_positive("num_classes", num_classes, name, allow_zero=True)
    _check_positive("in_chans", in_chans, name)
    model = entry.builder(num_classes=num_classes, in_chans=in_chans, **kwargs)
    if weights is not None:
        load_weights(model, resolve_weights(entry, weights))
    return model


def resolve_weights(entry: ModelEntry, weights: str | Path) -> Path:
    """Turn ``weights`` (a tag of ``entry`` or a file path) into an existing file path."""
    if not isinstance(weights, (str, Path)):
        raise TypeError(f"get_model({entry.name!r}): weights must be None, a tag or a path, "
                        f"got {type(weights).__name__}")
    if isinstance(weights, str) and weights in entry.weights:
        return entry.weights[weights]()
    path = Path(weights).expanduser()
    if path.is_file():
        return path
    tags = ", ".join(map(repr, entry.weights)) or "none"
    raise ValueError(
        f"get_model({entry.name!r}): weights={str(weights)!r} is neither an existing file nor a "
        f"packaged-weights tag of this model (tags: {tags})"
    )


def _check_positive(what: str, value: Any, name: str, allow_zero: bool = False) -> None:
    low = 0 if allow_zero else 1
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"get_model({name!r}): {what} must be an int >= {low}, got {value!r}")
