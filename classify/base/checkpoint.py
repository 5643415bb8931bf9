"""One-file checkpoints: weights + resolved config + class names + metrics + versions.

Written atomically (temporary file, then rename) so an interrupted save never leaves a broken
file; read with ``torch.load(weights_only=True)``, so only tensors and plain Python containers
are accepted (no pickled code). Used by classifier and detector training alike.

:func:`read_torch_file`, :func:`state_dict_from` and :func:`load_state_strict` are the one way
any weights file (a checkpoint, a plain state dict, torchvision's or another library's) is read
and loaded into a model.

Layout of the saved dict::

    {"format": "detect-pipeline-checkpoint", "version": 1,
     "model": state_dict, "config": {...plain YAML-able dict...}, "class_names": [...],
     "metrics": {...}, "versions": {"torch": ..., "torchvision": ..., "python": ...},
     "extra": {...}}   # e.g. optimizer/scheduler/EMA state and epoch, for resuming
"""

from __future__ import annotations

import platform
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from classify.base.atomic import atomic_write
from classify.base.paths import require_file

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



def copy_checkpoint(src: str | Path, dst: str | Path, *, half: bool = False) -> Path:
    """Rewrite the checkpoint ``src`` at ``dst`` (atomically), its floating-point weights in float16
    when ``half``: half the file, for shipping. :func:`load_state_strict` upcasts them on load
    (``load_state_dict`` copies into the model's float32 parameters). Config, class names, metrics
    and extra are kept; the software versions are those of this run."""
    ckpt = load_checkpoint(src)
    state = {k: v.half() if half and v.is_floating_point() else v for k, v in ckpt.model.items()}
    return save_checkpoint(dst, state, config=ckpt.config, class_names=ckpt.class_names, metrics=ckpt.metrics,
                           extra=ckpt.extra)

def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a checkpoint of this project (or is corrupt).
    """
    path = Path(path)
    payload = read_torch_file(path, "checkpoint", map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = sorted(payload)[:8] if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path}: expected a {FORMAT} file (keys 'format', 'model', ...), got {found}")
    if payload.get("version", 0) > VERSION:
        raise ValueError(f"{path}: checkpoint version {payload['version']} is newer than this code ({VERSION})")
    return Checkpoint(model=payload["model"], config=payload.get("config", {}),
                      class_names=payload.get("class_names", []), metrics=payload.get("metrics", {}),
                      versions=payload.get("versions", {}), extra=payload.get("extra", {}))


# ----------------------------------------------------------------------------- any weights file

NESTED_STATE_KEYS = ("model", "state_dict", "model_state_dict")
BN_COUNTER = "num_batches_tracked"
_SHOWN_KEYS = 4


def read_torch_file(path: str | Path, what: str = "weights file", map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with errors that say what came instead.

    Raises:
        FileNotFoundError: nothing at ``path``.
        IsADirectoryError: ``path`` is a folder.
        ValueError: the file is empty, corrupt or not a torch file (pickled code is refused).
    """
    path = require_file(path, what)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for corrupt or foreign files
        raise ValueError(f"{path}: not a readable {what} ({type(e).__name__}: {str(e).splitlines()[0]})") from None


def state_dict_from(obj: Any, where: str) -> dict[str, Tensor]:
    """The state dict in ``obj``: ``obj`` itself, or nested under ``"model"``, ``"state_dict"``
    or ``"model_state_dict"`` (this project's checkpoints, Lightning, most training scripts);
    a DataParallel/DDP ``"module."`` prefix is stripped."""
    while isinstance(obj, Mapping) and not _is_state_dict(obj):
        nested = next((k for k in NESTED_STATE_KEYS if isinstance(obj.get(k), Mapping)), None)
        if nested is None:
            raise ValueError(f"{where}: expected a state dict or a checkpoint holding one under "
                             f"{NESTED_STATE_KEYS}; found keys {_preview(sorted(map(str, obj)))}")
        obj = obj[nested]
    if not isinstance(obj, Mapping):
        raise TypeError(f"{where}: expected a state dict, got {type(obj).__name__}")
    if not obj:
        raise ValueError(f"{where}: expected a non-empty state dict, got an empty one")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _is_state_dict(obj: Mapping) -> bool:
    return bool(obj) and all(isinstance(v, Tensor) for v in obj.values())


def load_state_strict(model: nn.Module, state: Mapping[str, Tensor], where: str, *,
                      keep: Collection[str] = (), hint: str = "") -> None:
    """Load ``state`` into ``model``: every key must exist on both sides with the same shape.

    Exceptions: the keys in ``keep`` keep the model's values (a new classifier head), and
    BatchNorm ``num_batches_tracked`` counters may be absent on either side (frozen norm layers,
    old torchvision files). Otherwise ``ValueError`` names the first few missing, unexpected and
    mis-shaped keys, followed by ``hint``; nothing is loaded then.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state and k not in keep and not k.endswith(BN_COUNTER)]
    unexpected = [k for k in state if k not in own and not k.endswith(BN_COUNTER)]
    shapes = [f"{k}: file {list(state[k].shape)} vs model {list(own[k].shape)}"
              for k in state if k in own and state[k].shape != own[k].shape]
    problems = [f"{len(keys)} {kind} ({_preview(keys)})" for kind, keys in (
        ("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)) if keys]
    if problems:
        raise ValueError(f"{where}: the weights do not fit {type(model).__name__}: " + "; ".join(problems)
                         + (f" ({hint})" if hint else ""))
    model.load_state_dict({**own, **{k: v for k, v in state.items() if k in own and k not in keep}}, strict=True)


def _preview(items: list[str]) -> str:
    head = ", ".join(items[:_SHOWN_KEYS])
    return head + (f", ... {len(items) - _SHOWN_KEYS} more" if len(items) > _SHOWN_KEYS else "")
