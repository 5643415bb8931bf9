"""What a ``Predictor`` runs: a registry name, a ``detect train`` checkpoint, or an exported file.

The kind of a file is read from its content, not its name: an ONNX protobuf, a TorchScript
archive (a zip with ``code/``), or a torch checkpoint. Every kind comes back as a module that
follows the Detector contract, with its class names, so the ``Predictor`` has one code path.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from detect.models.loading import DetectorSpec

#: backends a ``Predictor`` runs a model with
BACKENDS = ("torch", "onnxruntime", "torchscript")


@dataclass
class LoadedModel:
    """A detector ready to run: ``model(images: list[Tensor[3,H,W]] in [0,1])`` → one
    ``{"boxes", "scores", "labels"}`` a image; ``name`` is what the user named (registry name or
    path); ``backend`` one of :data:`BACKENDS`."""

    model: nn.Module
    class_names: list[str]
    backend: str
    name: str


def file_backend(path: Path) -> str:
    """The backend that runs the file at ``path``: ``onnxruntime`` (ONNX), ``torchscript`` (a
    TorchScript archive) or ``torch`` (a checkpoint), read from the file's first bytes."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"PK" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if any("/code/" in name or name.startswith("code/") for name in archive.namelist()):
                return "torchscript"
        return "torch"
    if path.suffix.lower() == ".onnx" or head[:1] == b"\x08":  # ONNX ModelProto starts with ir_version (field 1)
        return "onnxruntime"
    return "torch"


def load_model(source: str | Path | nn.Module, *, device: torch.device, backend: str | None = None,
               image_size: int | None = None, weights: str | Path | None = None,
               class_names: list[str] | None = None) -> LoadedModel:
    """Load what ``source`` names (see the module docstring) on ``device``, in eval mode.

    Args:
        backend: ``None`` picks it from the file; a backend that does not fit the file is an error.
        image_size: input size replacing the model's own (registry models and checkpoints).
        weights: local weights for a registry name.
        class_names: names for a module or registry model that has none.

    Raises:
        FileNotFoundError: ``source`` looks like a path (a separator or a suffix) and is no file.
        ValueError: an unknown registry name, a file that is not a model, a backend that does not fit.
    """
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if isinstance(source, nn.Module):
        names = class_names or list(getattr(source, "class_names", None) or [])
        return LoadedModel(source.to(device).eval(), _require_names(names, type(source).__name__), "torch",
                           type(source).__name__)
    path = Path(source)
    if path.is_file():
        return _load_file(path, device, backend, image_size)
    if path.suffix or "/" in str(source) or "\\" in str(source):
        raise FileNotFoundError(f"model file not found: {source}")
    if backend not in (None, "torch"):
        raise ValueError(f"backend {backend}: runs a file written by 'detect export', not the registry name {source!r}")
    spec = DetectorSpec(name=str(source), weights=Path(weights) if weights else None,
                        image_size=(image_size,) if image_size else ())
    model, names = spec.load(device, class_names)
    return LoadedModel(model, _require_names(names, str(source)), "torch", str(source))


def _load_file(path: Path, device: torch.device, backend: str | None, image_size: int | None) -> LoadedModel:
    kind = file_backend(path)
    if backend is not None and backend != kind:
        what = {"torch": "a torch checkpoint", "onnxruntime": "an ONNX file", "torchscript": "a TorchScript file"}[kind]
        raise ValueError(f"backend {backend} cannot run {path}: it is {what} (backend {kind}); "
                         f"write one for {backend} with 'detect export {path} --format "
                         f"{'onnx' if backend == 'onnxruntime' else backend}'")
    if kind == "torch":
        spec = DetectorSpec(checkpoint=path, image_size=(image_size,) if image_size else ())
        model, names = spec.load(device)
        return LoadedModel(model, _require_names(names, str(path)), kind, str(path))
    from detect.export.runtime import load_exported

    if image_size is not None:
        raise ValueError(f"{path}: an exported model runs at the input size it was exported with; "
                         f"re-export it with --image-size {image_size}")
    model = load_exported(path, device=device)
    return LoadedModel(model, _require_names(list(model.class_names), str(path)), kind, str(path))


def load_spec(spec: DetectorSpec, device: torch.device | str,
              class_names: list[str] | None = None) -> tuple[nn.Module, list[str]]:
    """:meth:`DetectorSpec.load`, where the checkpoint may also be a file written by ``detect export``.

    Raises:
        ValueError: an exported file asked to run at another input size, or trained on other classes.
    """
    if spec.checkpoint is None or not Path(spec.checkpoint).is_file() or file_backend(Path(spec.checkpoint)) == "torch":
        return spec.load(device, class_names)
    loaded = _load_file(Path(spec.checkpoint), torch.device(device), None,
                        spec.image_size[0] if len(spec.image_size) == 1 else None)
    if len(spec.image_size) > 1:
        raise ValueError(f"{spec.checkpoint}: an exported model runs at one input size, not {list(spec.image_size)}")
    if class_names is not None and loaded.class_names != list(class_names):
        raise ValueError(f"{spec.checkpoint} predicts classes {loaded.class_names[:6]}, but the dataset has "
                         f"{list(class_names)[:6]}")
    return loaded.model, loaded.class_names


def _require_names(names: list[str], where: str) -> list[str]:
    if not names:
        raise ValueError(f"{where}: the model has no class names (a checkpoint written by 'detect train' and an "
                         "exported file carry them; give class_names for a bare module)")
    return list(names)
