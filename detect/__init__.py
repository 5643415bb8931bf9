"""Object detection on the shared ``classify`` backbones: data, models, evaluation, serving.

``detect.Predictor(model, ...)`` runs any detector on images and video frames;
``detect.get_detector(name, **kwargs)`` and ``detect.list_detectors()`` are the registry's entry
points (all imported lazily: ``import detect`` stays light).
"""

from __future__ import annotations

from typing import Any

from detect.offline import configure_ultralytics_env

configure_ultralytics_env()

__all__ = ["Detections", "Predictor", "get_detector", "list_detectors"]


def __getattr__(name: str) -> Any:
    if name in ("Predictor", "Detections"):
        from detect.inference import detections, predictor

        return getattr(predictor if name == "Predictor" else detections, name)
    if name in __all__:
        from detect.models import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'detect' has no attribute {name!r}")
