"""The ``detect export`` job: a checkpoint or registry detector -> an ONNX / TorchScript file,
checked against eager PyTorch.

The detector is loaded through :class:`detect.models.loading.DetectorSpec` (as ``detect eval``
loads it), its post-processing optionally changed (``--score-threshold``, ``--iou``,
``--max-det``: baked into the file), exported by :func:`detect.export.exporter.export_detector`,
then loaded back with :func:`detect.export.runtime.load_exported` and run beside the eager model
on a synthetic image: the largest box and score differences and whether the labels agree are
printed, with the file's path, size, format and opset.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from classify.base.checkpoint import copy_checkpoint, load_checkpoint
from detect.export.exporter import SUFFIXES, ExportResult, check_size, export_detector
from detect.export.parity import Parity, compare_detections, synthetic_image
from detect.export.runtime import load_exported
from detect.models.loading import DetectorSpec
from detect.models.postprocess import configure_postprocess

__all__ = ["ExportReport", "default_output", "export_checkpoint", "run_export"]

DEFAULT_FOLDER = Path("runs/export")


@dataclass(frozen=True)
class ExportReport:
    """The file written and, unless skipped, how the exported detector compares with eager PyTorch."""

    result: ExportResult
    parity: Parity | None
    image_size: tuple[int, int] | None


def default_output(spec: DetectorSpec, fmt: str) -> Path:
    """Beside the checkpoint (or the ``--weights`` file), else ``runs/export/<name>``, with the
    format's suffix (``.onnx``, ``.torchscript``)."""
    suffix = SUFFIXES[fmt]
    if spec.checkpoint is not None:
        return spec.checkpoint.with_suffix(suffix)
    if spec.weights is not None:
        return spec.weights.with_suffix(suffix)
    return DEFAULT_FOLDER / f"{spec.name}{suffix}"


def _detector_name(spec: DetectorSpec) -> str:
    if spec.name is not None:
        return spec.name
    return str(load_checkpoint(spec.checkpoint).config.get("detector", "detector"))


def run_export(
    checkpoint: Path | None = None,
    model: str | None = None,
    weights: Path | None = None,
    fmt: str = "onnx",
    out: str | Path | None = None,
    opset: int | None = None,
    image_size: int | None = None,
    iou: float | None = None,
    score_threshold: float | None = None,
    max_det: int | None = None,
    simplify: bool = False,
    check: bool = True,
    device: str = "cpu",
    half: bool = False,
    echo: Callable[[str], None] = print,
) -> ExportReport | Path:
    """Export one detector and check the file (see the module docstring).

    Args:
        checkpoint: a ``detect train`` checkpoint; or ``model`` (a registry name) with optional
            local ``weights``.
        fmt: ``onnx`` or ``torchscript``; or ``checkpoint``: a copy of the checkpoint (with ``half``,
            its weights in float16: half the size; see :func:`export_checkpoint`).
        out: the file to write (an existing folder, or a path ending in ``/``: the default name
            inside it); default :func:`default_output`.
        opset: the ONNX opset (default 18).
        image_size: the detector's input size instead of its own (as ``detect eval --image-size``).
        iou, score_threshold, max_det: post-processing baked into the file (default: the model's).
        simplify: simplify the ONNX graph with onnxslim.
        check: validate the ONNX file and compare the exported detector with eager PyTorch.
        device: where a TorchScript file is traced and runs (ONNX: cpu).
        half: with ``fmt="checkpoint"``, store the weights in float16.
        echo: where the report lines go.
    """
    if fmt == "checkpoint":
        return export_checkpoint(checkpoint, out, half=half, check=check, echo=echo)
    if half:
        raise ValueError("--half goes with --format checkpoint (ONNX and TorchScript files keep float32 weights)")
    if fmt not in SUFFIXES:
        raise ValueError(f"export format: expected one of {', '.join(SUFFIXES)}, got {fmt!r}")
    if simplify and fmt != "onnx":
        raise ValueError("--simplify goes with --format onnx")
    spec = DetectorSpec(model, checkpoint, weights, () if image_size is None else (image_size,))
    path = default_output(spec, fmt) if out is None else Path(out)
    if out is not None and (path.is_dir() or str(out).endswith(("/", os.sep))):
        path = path / default_output(spec, fmt).name
    if device != "cpu" and fmt != "torchscript":
        raise ValueError(f"--device {device} goes with --format torchscript; ONNX files are written on the CPU and "
                         "onnxruntime runs them on any device")
    net, class_names = spec.load(device)
    configure_postprocess(net, score_threshold=score_threshold, nms_threshold=iou, max_detections=max_det)
    name = _detector_name(spec)
    result = export_detector(net, class_names or None, path, fmt, opset=opset, simplify=simplify, check=check,
                             source=spec.label, detector=name, device=net_device(net))
    settings = result.metadata.settings
    if spec.checkpoint is not None:
        origin = f"checkpoint {spec.checkpoint}"
    else:
        origin = f"weights {spec.weights}" if spec.weights is not None else "random weights: no --weights given"
    echo(f"exported {name} ({origin}) to {result.path}")
    opset_note = f", opset {result.opset}" if result.opset is not None else ""
    echo(f"  {result.format}{opset_note}, {result.megabytes:.1f} MB; {result.metadata.exporter}")
    echo(f"  in the graph: {result.metadata.preprocessing['kind']}, NMS; score > {settings.score_threshold:g}, "
         f"NMS IoU {settings.nms_threshold:g}, at most {settings.max_detections} detections an image; "
         f"{len(result.metadata.class_names)} classes")
    parity, size = None, None
    if check:
        size = _check_size(result)
        parity = check_against_eager(net, result.path, size, net_device(net))
        verdict = "agrees with eager PyTorch" if parity.agree else "DIFFERS from eager PyTorch"
        echo(f"  check on a synthetic {size[0]} x {size[1]} image: {verdict}: {parity.summary()}")
    return ExportReport(result, parity, size)


def export_checkpoint(checkpoint: Path | None, out: str | Path | None, *, half: bool, check: bool = True,
                      echo: Callable[[str], None] = print) -> Path:
    """Copy a ``detect train`` checkpoint to ``out`` (default: beside it, ``<stem>-fp16.pt`` or
    ``<stem>-copy.pt``), with float16 weights when ``half``; with ``check``, both run on a synthetic
    image and the largest differences are printed (float16 weights move boxes by a fraction of a pixel)."""
    if checkpoint is None:
        raise ValueError("--format checkpoint copies a checkpoint written by 'detect train'; give its path")
    path = Path(out) if out is not None else checkpoint.with_name(f"{checkpoint.stem}-{'fp16' if half else 'copy'}.pt")
    if path.resolve() == Path(checkpoint).resolve():
        raise ValueError(f"--out {path} is the checkpoint itself; write the copy elsewhere")
    copy_checkpoint(checkpoint, path, half=half)
    echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {'float16' if half else 'unchanged'} weights) "
         f"from {checkpoint} ({Path(checkpoint).stat().st_size / 1e6:.1f} MB)")
    if check:
        net, _ = DetectorSpec(checkpoint=Path(checkpoint)).load("cpu")
        copy, _ = DetectorSpec(checkpoint=path).load("cpu")
        image = synthetic_image(*check_size(int(load_checkpoint(path).config.get("image_size") or 320)))
        with torch.inference_mode():
            parity = compare_detections(net([image]), copy([image]))
        echo(f"  on a synthetic image, against the original weights: {parity.summary()}")
    return path


def _check_size(result: ExportResult) -> tuple[int, int]:
    shape = result.metadata.input.get("shape")
    if shape:
        return int(shape[2]), int(shape[3])
    return check_size(int(result.metadata.image_size))


def net_device(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s parameters (the CPU for a model without any)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def check_against_eager(model: torch.nn.Module, path: Path, size: tuple[int, int],
                        device: str | torch.device = "cpu") -> Parity:
    """Run ``model`` and the exported file at ``path`` on :func:`synthetic_image` of ``size``."""
    image = synthetic_image(*size).to(device)
    exported = load_exported(path, device)
    with torch.inference_mode():
        reference = model([image])
        detections = exported([image])
    return compare_detections(reference, detections)
