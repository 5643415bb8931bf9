"""Detector registry: ``get_detector(name, **kwargs)`` over a plain dict filled by ``@register_detector``.

Every registered builder returns an ``nn.Module`` following the Detector contract (docs/design.md):
``model(images: list[Tensor[3,H,W]] in [0,1], targets=None)``; in eval mode one
``{"boxes", "scores", "labels"}`` per image, boxes xyxy in original image pixels.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class DetectorEntry:
    name: str
    builder: Builder
    family: str  # "faster_rcnn", "yolo", ...
    backbone: str  # shown in benchmark tables
    peer: bool  # a reference implementation from another library
    trains: bool = True  # ``detect train`` can train it (the Detector contract's training mode)


_DETECTORS: dict[str, DetectorEntry] = {}

#: modules whose import registers the built-in detectors (imported on first use, by name, so
#: the registry itself imports no model)
BUILTIN_MODULES = (
    "detect.models.rcnn.faster_rcnn",
    "detect.models.rcnn.tv_variants",
    "detect.models.peers.torchvision",
    "detect.models.peers.ultralytics",
    "detect.models.yolo.v1",
    "detect.models.yolo.v3",
    "detect.models.yolo.modern",
)


def register_detector(name: str, *, family: str, backbone: str, peer: bool = False,
                      trains: bool = True) -> Callable[[Builder], Builder]:
    """Decorator adding ``builder`` to the registry under ``name`` (``trains=False``: inference only)."""

    def add(builder: Builder) -> Builder:
        if name in _DETECTORS:
            raise ValueError(f"detector {name!r} is already registered")
        _DETECTORS[name] = DetectorEntry(name, builder, family, backbone, peer, trains)
        return builder

    return add


def _load_builtin() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)


def list_detectors() -> list[str]:
    _load_builtin()
    return sorted(_DETECTORS)


def detector_entry(name: str) -> DetectorEntry:
    _load_builtin()
    if name not in _DETECTORS:
        close = difflib.get_close_matches(name, list(_DETECTORS), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown detector {name!r}{hint} (available: {', '.join(sorted(_DETECTORS))})")
    return _DETECTORS[name]


def check_trainable(name: str) -> None:
    """Raise ``ValueError`` unless ``detect train`` can train detector ``name``."""
    if not detector_entry(name).trains:
        trainable = [n for n in list_detectors() if _DETECTORS[n].trains]
        raise ValueError(f"detector {name!r} runs for evaluation and benchmarks only; detect train cannot train "
                         f"it yet (trainable: {', '.join(trainable)})")


def get_detector(name: str, **kwargs: object) -> nn.Module:
    """Build the detector registered as ``name`` (see :func:`list_detectors`)."""
    return detector_entry(name).builder(**kwargs)
