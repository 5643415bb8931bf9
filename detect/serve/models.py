"""The models a service serves: every model file in one folder, by name (the file's stem).

A file is a ``detect train`` checkpoint (``.pt``/``.pth``; half-precision weights are upcast on
load) or a file of ``detect export`` (``.onnx``, ``.torchscript``); its kind is read from its
content (:func:`detect.inference.model_files.file_backend`). Each is loaded once, at start, into a
:class:`~detect.inference.predictor.Predictor` that runs at the lowest score threshold a request
may ask for (:data:`SCORE_FLOOR`) and the most detections (:data:`MAX_DETECTIONS`): a request's own
threshold, count and classes are applied to the model's output (:func:`select`), so requests with
different thresholds share one batch.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detect.inference.detections import Detections
from detect.inference.model_files import file_backend
from detect.inference.predictor import Predictor, class_indices
from detect.serve.errors import ApiError

log = logging.getLogger("detect.serve")

#: suffixes of the files served from the model folder
MODEL_SUFFIXES = (".pt", ".pth", ".onnx", ".torchscript")
#: the lowest score threshold a request may ask for: the model runs at it
SCORE_FLOOR = 0.01
#: the most detections an image a request may ask for: the model keeps that many
MAX_DETECTIONS = 300


@dataclass
class ServedModel:
    """One served model: ``name`` (file stem), ``path``, ``version`` (the first 12 hex digits of the
    file's SHA-256), ``backend`` (torch / onnxruntime / torchscript), ``class_names`` and the
    ``predictor`` that runs it (set up for :func:`select`)."""

    name: str
    path: Path
    version: str
    backend: str
    class_names: list[str]
    predictor: Predictor

    @property
    def default_iou(self) -> float:
        return self.predictor.settings.nms_threshold


def file_version(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def load_served_model(path: Path, device: str = "cpu") -> ServedModel:
    """``path`` loaded for serving (weights only: ``torch.load(weights_only=True)``)."""
    predictor = Predictor(path, device=device, conf=SCORE_FLOOR, max_det=MAX_DETECTIONS)
    return ServedModel(path.stem, path, file_version(path), file_backend(path), predictor.class_names, predictor)


class ModelStore:
    """The models of ``model_dir`` loaded on ``device``; ``default`` is the name a request without
    a model gets.

    A file that cannot be loaded is logged and left out (listed in :attr:`failed`), so one bad
    file does not stop the others; the default model missing is an error.

    Raises:
        FileNotFoundError: ``model_dir`` is not a folder.
        ValueError: no model could be loaded, or the default model is not among them.
    """

    def __init__(self, model_dir: Path, default: str, device: str = "cpu") -> None:
        if not Path(model_dir).is_dir():
            raise FileNotFoundError(f"model folder not found: {model_dir}")
        self.models: dict[str, ServedModel] = {}
        self.failed: dict[str, str] = {}
        for path in sorted(p for p in Path(model_dir).iterdir() if p.suffix.lower() in MODEL_SUFFIXES):
            if path.stem in self.models:
                self.failed[path.name] = f"a model named {path.stem!r} is already served ({self.models[path.stem].path.name})"
                continue
            try:
                self.models[path.stem] = load_served_model(path, device)
            except (OSError, ValueError, RuntimeError) as exc:
                self.failed[path.name] = str(exc)
                log.warning("model %s not served: %s", path, exc)
        if not self.models:
            raise ValueError(f"no model could be loaded from {model_dir} (files ending in {', '.join(MODEL_SUFFIXES)}"
                             f"{'; failures: ' + '; '.join(f'{k}: {v}' for k, v in self.failed.items()) if self.failed else ''})")
        if default not in self.models:
            raise ValueError(f"the default model {default!r} is not in {model_dir}: it serves {', '.join(self.models)}")
        self.default = default

    def names(self) -> list[str]:
        return list(self.models)

    def get(self, name: str | None) -> ServedModel:
        """The model called ``name`` (``None``: the default).

        Raises:
            ApiError: 404 for a name that is not served (with the closest names).
        """
        name = name or self.default
        if name not in self.models:
            close = difflib.get_close_matches(name, list(self.models), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ApiError(404, f"no model named {name!r}{hint}", expected=f"one of {', '.join(self.models)}", got=name)
        return self.models[name]


def select(detections: Detections, model: ServedModel, *, conf: float, max_det: int,
           classes: Sequence[str | int] | None) -> Detections:
    """The detections a request asked for, from the model's output at :data:`SCORE_FLOOR`: score
    ≥ ``conf``, only ``classes`` (names or 0-based indices), the ``max_det`` best (the output is
    sorted by score).

    Raises:
        ApiError: 422 for a class the model does not predict.
    """
    try:
        wanted = class_indices(classes, model.class_names)
    except ValueError as exc:
        raise ApiError(422, str(exc), expected=f"classes of {model.name}", got=", ".join(map(str, classes or []))) from None
    keep = detections.scores >= conf
    if wanted is not None:
        keep &= np.isin(detections.labels, wanted)
    order = np.flatnonzero(keep)
    order = order[np.argsort(-detections.scores[order], kind="stable")][:max_det]
    return detections.select(order)
