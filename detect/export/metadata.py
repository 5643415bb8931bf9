"""What an exported file says about itself: one JSON document, ``metadata.json``.

Stored in an ONNX file's ``metadata_props`` (key ``metadata.json``) and in a TorchScript file's
``_extra_files`` (``extra/metadata.json`` in the archive).  :func:`load_exported` refuses a file
without it.  Fields (:class:`ExportMetadata`):

* ``format`` (always :data:`FORMAT`), ``version`` (of this layout, :data:`VERSION`),
  ``file_format`` (``onnx`` or ``torchscript``), ``exporter`` (what wrote the graph), ``opset``
  (ONNX; ``None`` for TorchScript);
* ``detector`` (registry name), ``family`` (``faster_rcnn`` or ``yolo``), ``config`` (the build
  configuration), ``source`` (the checkpoint or registry name exported), ``class_names``;
* ``input``: name, layout ``NCHW``, dtype, value range, RGB, whether batch and size are dynamic
  and the fixed shape when they are not; ``preprocessing`` (what the graph does before the
  network: the R-CNN resize or the YOLO letterbox, their sizes, mean/std, fill); ``image_size`` (the
  resized short side of an R-CNN, the letterbox side of a YOLO);
* ``outputs``: names and layout (see :mod:`detect.export.graph`); ``postprocess``: the score
  threshold, NMS IoU and detections an image baked into the graph; ``nms_in_graph``;
* ``device``: the device type a TorchScript file was traced on and runs on (``None`` for ONNX);
* ``versions``: the project, torch, torchvision, onnx, onnxruntime and ultralytics versions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata as importlib_metadata
from typing import Any

from detect.models.postprocess import PostprocessSettings

__all__ = ["FORMAT", "METADATA_KEY", "VERSION", "ExportMetadata", "software_versions"]

FORMAT = "detect-pipeline exported detector"
VERSION = 1
#: the key in ONNX ``metadata_props`` and the name in TorchScript ``_extra_files``
METADATA_KEY = "metadata.json"
_REQUIRED = ("file_format", "exporter", "opset", "detector", "family", "source", "class_names", "input",
             "preprocessing", "image_size", "outputs", "postprocess")
_PACKAGES = ("detect-pipeline", "torch", "torchvision", "onnx", "onnxruntime", "onnxslim", "ultralytics")


def software_versions() -> dict[str, str]:
    """Installed versions of the project and of the libraries an export depends on."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


@dataclass(frozen=True)
class ExportMetadata:
    """The ``metadata.json`` of an exported detector (see the module docstring)."""

    file_format: str
    exporter: str
    opset: int | None
    detector: str
    family: str
    source: str
    class_names: list[str]
    input: dict[str, Any]
    preprocessing: dict[str, Any]
    image_size: int
    outputs: dict[str, Any]
    postprocess: dict[str, Any]
    nms_in_graph: bool = True
    device: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    format: str = FORMAT
    version: int = VERSION

    @property
    def settings(self) -> PostprocessSettings:
        """The post-processing baked into the graph."""
        p = self.postprocess
        return PostprocessSettings(float(p["score_threshold"]), float(p["nms_threshold"]), int(p["max_detections"]))

    @property
    def dynamic(self) -> bool:
        """Whether the graph takes any batch size and image size."""
        return bool(self.input.get("dynamic_batch")) and bool(self.input.get("dynamic_size"))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str | bytes, where: str) -> ExportMetadata:
        """Parse ``text``; ``ValueError`` naming ``where`` (the file) for anything but this layout."""
        try:
            values = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{where}: its {METADATA_KEY} is not valid JSON ({err})") from err
        if not isinstance(values, dict) or values.get("format") != FORMAT:
            found = values.get("format") if isinstance(values, dict) else type(values).__name__
            raise ValueError(f"{where}: its {METADATA_KEY} is not this project's export metadata (format "
                             f"{found!r}, expected {FORMAT!r})")
        if int(values.get("version", 0)) > VERSION:
            raise ValueError(f"{where}: export metadata version {values['version']} is newer than this code "
                             f"({VERSION}); update the project")
        known = {f.name for f in fields(cls)}
        missing = [name for name in _REQUIRED if name not in values]
        if missing:
            raise ValueError(f"{where}: export metadata lacks {', '.join(missing)}")
        return cls(**{k: v for k, v in values.items() if k in known})
