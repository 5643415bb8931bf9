"""``export_detector``: a detector (Detector contract) as an ONNX or TorchScript file.

    >>> model, names = DetectorSpec(checkpoint=Path("runs/detect/quick/best.pt")).load("cpu")
    >>> export_detector(model, names, "best.onnx", "onnx")          # or "torchscript"
    >>> detector = load_exported("best.onnx")                       # detect.export.runtime
    >>> detector([image])                                            # [{"boxes", "scores", "labels"}]

The detector is copied, set to eval mode on the CPU, and its whole inference becomes one graph
(:mod:`detect.export.rcnn` for Faster R-CNN, ours and torchvision's; :mod:`detect.export.yolo`
for the ultralytics peers): input ``images: float32[N, 3, H, W]`` in [0, 1] (RGB), any ``N``,
``H``, ``W`` (``dynamic=False``: the example's shape only); preprocessing and NMS inside; the
flat outputs of :mod:`detect.export.graph` in the input's pixels.  The post-processing settings
in force (``configure_postprocess``) are baked in; a runtime can only tighten them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from detect.export.graph import INPUT_NAME, OUTPUT_NAMES, ExportGraph, NotExportable
from detect.export.metadata import ExportMetadata, software_versions

__all__ = ["FORMATS", "SUFFIXES", "ExportResult", "build_graph", "check_size", "example_images", "export_detector"]

#: file formats and their usual file suffix
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript"}
FORMATS = tuple(SUFFIXES)
EXAMPLE_BATCH = 2


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_detector` wrote: the file, its size, format, opset and metadata."""

    path: Path
    format: str
    opset: int | None
    bytes: int
    metadata: ExportMetadata

    @property
    def megabytes(self) -> float:
        return self.bytes / 2**20


def detector_name(model: nn.Module) -> str:
    """A name for ``model`` when the caller gives none: its variant or family."""
    config = getattr(model, "config", None)
    if isinstance(config, dict) and config.get("variant"):
        return str(config["variant"])
    net = getattr(model, "net", None)
    yaml_file = (getattr(net, "yaml", None) or {}).get("yaml_file") if net is not None else None
    if yaml_file:
        return Path(str(yaml_file)).stem
    return {"FasterRCNN": "faster_rcnn"}.get(type(model).__name__, type(model).__name__)


def build_graph(model: nn.Module, name: str | None = None) -> ExportGraph:
    """The export graph of a copy of ``model`` (eval mode, CPU).

    Raises:
        NotExportable: a detector family or option the graphs do not reproduce (the message
            names the model and the reason).
    """
    from detect.export.rcnn import RCNNGraph, find_rcnn
    from detect.export.rcnn import check_exportable as check_rcnn
    from detect.models.yolo.base import YoloDetector

    name = name or detector_name(model)
    if isinstance(model, YoloDetector):
        from detect.export.yolo import YoloGraph
        from detect.export.yolo import check_exportable as check_yolo

        check_yolo(model, name)
        return YoloGraph(copy.deepcopy(model).cpu().eval(), name).eval()
    rcnn = find_rcnn(model)
    if rcnn is not None:
        check_rcnn(model, rcnn, name)
        config = getattr(model, "config", None)
        copied = copy.deepcopy(model).cpu().eval()
        return RCNNGraph(find_rcnn(copied), name, dict(config) if isinstance(config, dict) else None).eval()
    raise NotExportable(f"{name}: no export graph for a {type(model).__name__}; exportable detectors are Faster "
                        "R-CNN (faster_rcnn*, tv_fasterrcnn_*) and the YOLO family (ours and the ultralytics peers)")


def example_images(graph: ExportGraph, image_size: int | tuple[int, int] | None = None,
                   batch: int = EXAMPLE_BATCH) -> Tensor:
    """Seeded random ``float32[batch, 3, H, W]`` input to trace ``graph`` with: ``image_size``
    (``S`` or ``(H, W)``), else :func:`check_size` of the model's input size."""
    if image_size is None:
        height, width = check_size(graph.image_size())
    elif isinstance(image_size, int):
        height = width = image_size
    else:
        height, width = image_size
    if height < 1 or width < 1:
        raise ValueError(f"image size: expected positive sides, got {height} x {width}")
    generator = torch.Generator().manual_seed(0)
    return torch.rand(batch, 3, height, width, generator=generator)


def check_size(image_size: int) -> tuple[int, int]:
    """``(height, width)`` of a 3:4 image whose long side is the detector's ``image_size`` (so that
    height and width differ in a trace)."""
    return max(32, image_size * 3 // 4), image_size


def _num_classes(graph: ExportGraph) -> int:
    if graph.family == "yolo":
        return graph.num_classes
    return int(graph.roi_heads.box_predictor.cls_score.out_features) - 1


def export_detector(model: nn.Module, class_names: list[str] | None, path: str | Path, format: str = "onnx", *,
                    opset: int | None = None, dynamic: bool = True, image_size: int | tuple[int, int] | None = None,
                    simplify: bool = False, check: bool = True, source: str | None = None,
                    detector: str | None = None, device: str | torch.device = "cpu") -> ExportResult:
    """Write ``model`` (a registered detector, any mode or device; it is not changed) to ``path``.

    Args:
        model: the detector; its post-processing settings in force are baked into the graph.
        class_names: its classes (``None``: ``model.class_names``, else ``"0"``, ``"1"``, ...).
        path: the file to write (parent folders are created; written atomically).
        format: ``"onnx"`` or ``"torchscript"``.
        opset: ONNX opset (default :data:`detect.export.onnx.DEFAULT_OPSET`); ONNX only.
        dynamic: free batch size and image size; ``False``: the file takes one image of the
            example's size a call (the runtime refuses other sizes).
        image_size: ``S`` or ``(H, W)`` of the example traced (and the one input size of a
            ``dynamic=False`` file); default: the model's own size, 3:4.
        simplify: run ``onnxslim`` on the ONNX graph.
        check: validate the ONNX file with ``onnx.checker.check_model``.
        source: what was exported (a checkpoint path, a registry name), for the metadata.
        detector: the registry name (default: derived from the model).
        device: where a TorchScript file is traced, and so where it runs (a trace fixes the
            device of the tensors it creates); ONNX files are written on the CPU and take any.

    Raises:
        NotExportable: (a ``ValueError``) the model cannot be exported, and why.
        ValueError: an unknown format, an opset out of range, class names that do not fit.
    """
    if format not in FORMATS:
        raise ValueError(f"export format: expected one of {', '.join(FORMATS)}, got {format!r}")
    if opset is not None and format != "onnx":
        raise ValueError(f"--opset goes with the onnx format, not {format}")
    device = torch.device(device)
    if device.type != "cpu" and format != "torchscript":
        raise ValueError(f"--device {device} goes with the torchscript format; ONNX files are written on the CPU "
                         "and onnxruntime runs them on any device")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder; expected the path of the {format} file to write")
    name = detector or detector_name(model)
    graph = build_graph(model, name)
    names = _class_names(class_names, model, _num_classes(graph), name)
    example = example_images(graph, image_size, batch=EXAMPLE_BATCH if dynamic else 1)
    if format == "torchscript":
        graph, example = graph.to(device), example.to(device)
    if hasattr(graph, "prepare"):
        with torch.no_grad():
            graph.prepare(example)
    if format == "onnx":
        from detect.export import onnx as onnx_writer

        opset = onnx_writer.DEFAULT_OPSET if opset is None else int(opset)
        onnx_writer.check_opset(opset, graph)
        exporter = onnx_writer.EXPORTER
    else:
        from detect.export import torchscript as ts_writer

        exporter = ts_writer.EXPORTER
    metadata = _metadata(graph, names, format, exporter, opset, dynamic, example, source or name, name,
                         device.type if format == "torchscript" else None)
    if format == "onnx":
        onnx_writer.write_onnx(graph, example, path, metadata.to_json(), opset=opset, dynamic=dynamic,
                               simplify=simplify, check=check)
    else:
        ts_writer.write_torchscript(graph, example, path, metadata.to_json())
    return ExportResult(path, format, opset, path.stat().st_size, metadata)


def _class_names(class_names: list[str] | None, model: nn.Module, count: int, name: str) -> list[str]:
    names = class_names if class_names is not None else getattr(model, "class_names", None)
    names = [str(n) for n in names] if names else [str(i) for i in range(count)]
    if len(names) != count:
        raise ValueError(f"{name}: {len(names)} class names for a model of {count} classes")
    return names


def _metadata(graph: ExportGraph, names: list[str], file_format: str, exporter: str, opset: int | None,
              dynamic: bool, example: Tensor, source: str, name: str, device: str | None) -> ExportMetadata:
    settings = graph.settings
    shape = list(example.shape)
    return ExportMetadata(
        file_format=file_format, exporter=exporter, opset=opset, detector=name, family=graph.family, source=source,
        class_names=names,
        input={"name": INPUT_NAME, "layout": "NCHW", "dtype": "float32", "range": [0.0, 1.0], "channels": "RGB",
               "dynamic_batch": dynamic, "dynamic_size": dynamic, "shape": None if dynamic else shape},
        preprocessing=graph.preprocessing(), image_size=graph.image_size(),
        outputs={"names": list(OUTPUT_NAMES), "layout": "flat", "description": (
            "boxes float32[K, 4] xyxy pixels of the input image, scores float32[K], labels int64[K] 0-based, "
            "batch_index int64[K]: the image of each detection; sorted by decreasing score, at most "
            "max_detections an image")},
        postprocess={"score_threshold": settings.score_threshold, "nms_threshold": settings.nms_threshold,
                     "max_detections": settings.max_detections},
        nms_in_graph=True, device=device, config=_jsonable(graph.config()), versions=software_versions())


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
