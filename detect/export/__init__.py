"""Exported detectors: ONNX and TorchScript files written from a registered detector, and run back
through the Detector contract.

    >>> from detect.export import export_detector, load_exported
    >>> result = export_detector(model, class_names, "model.onnx")      # or format="torchscript"
    >>> detector = load_exported("model.onnx")                          # an ExportedDetector
    >>> detector(images)                      # [{"boxes", "scores", "labels"}] as the eager model

Modules, one concept each:

* :mod:`~detect.export.graph`: the graph contract (input ``images: float32[N, 3, H, W]`` in
  [0, 1]; flat outputs ``boxes``, ``scores``, ``labels``, ``batch_index``), the refusal error
  :class:`NotExportable` and the batched NMS pieces;
* :mod:`~detect.export.rcnn` / :mod:`~detect.export.yolo`: Faster R-CNN (ours, torchvision's
  variants and peers) and the ultralytics peers as batched graphs, preprocessing and NMS inside;
* :mod:`~detect.export.onnx` / :mod:`~detect.export.torchscript`: the writers (exporter, opset);
* :mod:`~detect.export.metadata`: the ``metadata.json`` every file carries;
* :mod:`~detect.export.exporter`: :func:`export_detector`;
* :mod:`~detect.export.runtime`: :func:`load_exported` and :class:`ExportedDetector`;
* :mod:`~detect.export.parity`: comparing an exported detector with its eager model.
"""

from __future__ import annotations

from detect.export.exporter import FORMATS, ExportResult, export_detector
from detect.export.graph import NotExportable
from detect.export.metadata import ExportMetadata
from detect.export.runtime import ExportedDetector, load_exported, read_metadata

__all__ = ["FORMATS", "ExportMetadata", "ExportResult", "ExportedDetector", "NotExportable", "export_detector",
           "load_exported", "read_metadata"]
