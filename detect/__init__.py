"""Object detection on the shared ``classify`` backbones: data, models, evaluation, serving.

``detect.get_detector(name, **kwargs)`` and ``detect.list_detectors()`` are the registry's entry
points (imported lazily: ``import detect`` stays light).
"""

from __future__ import annotations

from typing import Any

from detect.offline import configure_ultralytics_env

configure_ultralytics_env()

__all__ = ["get_detector", "list_detectors"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from detect.models import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'detect' has no attribute {name!r}")
