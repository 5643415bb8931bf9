"""One-file checkpoints: weights + resolved config + class names + metrics + versions.

Written atomically (temporary file, then rename) so an interrupted save never leaves a broken
file; read with ``torch.load(weights_only=True)``, so only tensors and plain Python containers
are accepted (no pickled code). Used by classifier and detector training alike.

Layout of the saved dict::

    {"format": "detect-pipeline-checkpoint", "version": 1,
     "model": state_dict, "config": {...plain YAML-able dict...}, "class_names": [...],
     "metrics": {...}, "versions": {"torch": ..., "torchvision": ..., "python": ...},
     "extra": {...}}   # e.g. optimizer/scheduler/EMA state and epoch, for resuming
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from classify.base.atomic import atomic_write

FORMAT = "detect-pipeline-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    """The content of a checkpoint file."""

    model: dict[str, torch.Tensor]
    config: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def software_versions() -> dict[str, str]:
    import torchvision

    return {"torch": str(torch.__version__), "torchvision": str(torchvision.__version__),
            "python": platform.python_version()}


def save_checkpoint(path: str | Path, model_state: Mapping[str, torch.Tensor], *, config: Mapping[str, Any] | None = None,
                    class_names: list[str] | None = None, metrics: Mapping[str, Any] | None = None,
                    extra: Mapping[str, Any] | None = None) -> Path:
    """Write a checkpoint to ``path`` atomically; returns the path."""
    payload = {
        "format": FORMAT, "version": VERSION,
        "model": {k: v.detach().cpu() for k, v in model_state.items()},
        "config": dict(config or {}), "class_names": list(class_names or []),
        "metrics": dict(metrics or {}), "versions": software_versions(), "extra": dict(extra or {}),
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a checkpoint of this project (or is corrupt).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for corrupt or foreign files
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = sorted(payload)[:8] if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path}: expected a {FORMAT} file (keys 'format', 'model', ...), got {found}")
    if payload.get("version", 0) > VERSION:
        raise ValueError(f"{path}: checkpoint version {payload['version']} is newer than this code ({VERSION})")
    return Checkpoint(model=payload["model"], config=payload.get("config", {}),
                      class_names=payload.get("class_names", []), metrics=payload.get("metrics", {}),
                      versions=payload.get("versions", {}), extra=payload.get("extra", {}))
