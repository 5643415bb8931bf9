"""The ``detect eval`` job: ground truth + (a results file | a registry model) -> metrics, tables, plots.

Outputs in ``out_dir``: ``metrics.json`` (the report, plus the source and, when asked, the
ultralytics comparison), ``metrics.md``, ``pr_curves.png``, ``confusion_matrix.png`` and
``examples.png``. The rich tables go to the terminal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from classify.base.device import resolve_device
from detect.data.dataset import DetectionDataset, target_from_record
from detect.data.files import write_text_atomic
from detect.data.formats import available_splits, detect_format, load_split
from detect.evaluation.report import EvaluationReport, evaluate_all
from detect.evaluation.results_io import read_results
from detect.models.loading import input_sizes
from detect.structures import DatasetSplit

if TYPE_CHECKING:
    from detect.evaluation.ultralytics_compare import Comparison

OUTPUT_FILES = ("metrics.json", "metrics.md", "pr_curves.png", "confusion_matrix.png", "examples.png")
_SPLIT_PREFERENCE = ("val", "test", "train")


def default_split(gt: Path, fmt: str | None) -> str | None:
    """The split evaluated when none is named: ``val``, else ``test``, else ``train``, else the first."""
    splits = available_splits(gt, fmt)
    for name in _SPLIT_PREFERENCE:
        if name in splits:
            return name
    return splits[0] if splits else None


def load_ground_truth(gt: Path, split: str | None, fmt: str | None) -> DatasetSplit:
    """Read the ground-truth split strictly (``DatasetError`` lists every problem)."""
    gt = Path(gt)
    fmt = fmt or detect_format(gt)
    if split is not None and split not in (splits := available_splits(gt, fmt)):
        raise ValueError(f"{gt}: no split {split!r} in this {fmt} dataset; it has {splits}")
    data = load_split(gt, split or default_split(gt, fmt), fmt)
    if not data.images:
        raise ValueError(f"{gt}: split '{data.name}' has no images to evaluate")
    return data


def _check_source(predictions: Path | None, model: str | None, weights: Path | None,
                  image_size: int | Sequence[int] | None, checkpoint: Path | None = None) -> None:
    if sum(x is not None for x in (predictions, model, checkpoint)) != 1:
        raise ValueError("expected exactly one source of detections: a predictions file/folder, a model name "
                         "or a checkpoint")
    if checkpoint is not None and weights is not None:
        raise ValueError("--weights goes with --model; a checkpoint carries its own")
    if predictions is not None and (weights is not None or image_size is not None):
        raise ValueError("--weights and --image-size go with --model, not with --predictions")
    if weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(f"weights not found: {weights}")
    sizes = list(input_sizes(image_size))
    if any(size <= 0 for size in sizes):
        raise ValueError(f"image size: expected positive numbers of pixels, got {sizes}")
    if len(sizes) > 1 and checkpoint is None:
        raise ValueError(f"several image sizes ({sizes}) go with --checkpoint (a multi-size test); "
                         "give --model one size")


def predict_with_model(data: DatasetSplit, model: str, weights: Path | None, image_size: int | Sequence[int] | None,
                       device: str, batch_size: int) -> tuple[list[dict], list[dict[str, torch.Tensor]]]:
    """Build registry model ``model`` for ``data``'s classes and run it over every image."""
    from detect.inference.loop import predict_dataset
    from detect.models.registry import get_detector

    sizes = input_sizes(image_size)
    image_size = sizes[0] if sizes else None  # one size at most: checked by _check_source
    resolve_device(device)
    net = get_detector(model, num_classes=len(data.class_names), image_size=image_size, weights=weights)
    _check_model_classes(net, data.class_names, model)
    net.to(device)
    return predict_dataset(net, DetectionDataset(data), batch_size=batch_size, device=device)


def predict_with_checkpoint(data: DatasetSplit, checkpoint: Path, device: str, batch_size: int,
                            image_size: int | Sequence[int] | None = None
                            ) -> tuple[list[dict], list[dict[str, torch.Tensor]]]:
    """Rebuild the detector saved by ``detect train`` and run it over every image of ``data``
    (at ``image_size`` instead of the checkpoint's input size when given; several sizes: a
    multi-size test, see :func:`detect.models.loading.load_detector`)."""
    from detect.inference.loop import predict_dataset
    from detect.models.loading import load_detector

    net, names = load_detector(checkpoint, resolve_device(device), image_size)
    if list(names) != list(data.class_names):
        raise ValueError(f"{checkpoint} was trained on classes {_short(names)}, but the ground truth has "
                         f"{_short(data.class_names)}")
    return predict_dataset(net, DetectionDataset(data), batch_size=batch_size, device=device)


def _check_model_classes(net: torch.nn.Module, class_names: list[str], model: str) -> None:
    names = getattr(net, "class_names", None)
    if names is None:
        return
    if len(names) != len(class_names):
        raise ValueError(
            f"model {model!r} predicts {len(names)} classes {_short(names)}, but the ground truth has "
            f"{len(class_names)}: {_short(class_names)}"
        )


def _short(names: Sequence[str], n: int = 6) -> str:
    shown = ", ".join(map(str, names[:n]))
    return f"[{shown}{', ...' if len(names) > n else ''}]"


def run_evaluation(
    gt: Path,
    split: str | None = None,
    fmt: str | None = None,
    predictions: Path | None = None,
    model: str | None = None,
    weights: Path | None = None,
    image_size: int | Sequence[int] | None = None,
    out_dir: Path = Path("runs/eval"),
    checkpoint: Path | None = None,
    backend: str = "pycocotools",
    iou: float = 0.5,
    score_threshold: float = 0.25,
    compare_ultralytics: bool = False,
    num_examples: int = 8,
    device: str = "cpu",
    batch_size: int = 8,
    predictions_format: str | None = None,
    console: object | None = None,
) -> EvaluationReport:
    """Evaluate detections of one split and write every output file (see the module docstring).

    Args:
        gt: ground-truth dataset (COCO json/folder, VOC folder, YOLO data.yaml/folder).
        split, fmt: the split (default: :func:`default_split`) and the dataset format (detected).
        predictions: a COCO results JSON or a YOLO predictions folder (``detect.evaluation.results_io``).
        model, weights, image_size: a registry detector (``detect.models.registry.get_detector``), its
            local weights and input size, run over the split's images instead of ``predictions``
            (``image_size`` also replaces a ``checkpoint``'s input size; several sizes run it as a
            multi-size test).
        out_dir: folder for the outputs (created).
        backend: COCO backend, ``pycocotools`` or ``faster-coco-eval``.
        iou, score_threshold: operating point of P/R/F1 and the confusion matrix (not of mAP).
        compare_ultralytics: also compute ultralytics' metrics on the same detections.
        num_examples: images drawn in ``examples.png`` (0: no examples file).
        checkpoint: a ``detect train`` checkpoint, run over the split instead of ``predictions``.
        device, batch_size: inference settings with ``model`` or ``checkpoint``.
        predictions_format: ``coco`` or ``yolo`` (default: detected from ``predictions``).
        console: a ``rich`` console for the tables (default: a new one on stdout).
    """
    _check_source(predictions, model, weights, image_size, checkpoint)
    if batch_size <= 0:
        raise ValueError(f"batch size: expected a positive integer, got {batch_size}")
    if num_examples < 0:
        raise ValueError(f"examples: expected 0 or more images, got {num_examples}")
    data = load_ground_truth(gt, split, fmt)
    if predictions is not None:
        outputs = read_results(data, Path(predictions), predictions_format)
        targets = [target_from_record(r) for r in data.images]
    elif checkpoint is not None:
        targets, outputs = predict_with_checkpoint(data, Path(checkpoint), device, batch_size, image_size)
    else:
        targets, outputs = predict_with_model(data, model, weights, image_size, device, batch_size)
    report = evaluate_all(data.class_names, targets, outputs, score_threshold=score_threshold, iou=iou, backend=backend)
    comparison = None
    if compare_ultralytics:
        from detect.evaluation.ultralytics_compare import compare_with_ultralytics

        comparison = compare_with_ultralytics(report, targets, outputs)
    source = _source(gt, data, predictions, model or (str(checkpoint) if checkpoint else None), weights)
    written = write_outputs(report, data, outputs, Path(out_dir), source, comparison, num_examples)
    _print(report, comparison, written, console)
    return report


def _source(gt: Path, data: DatasetSplit, predictions: Path | None, model: str | None, weights: Path | None) -> dict:
    return {
        "ground_truth": str(gt),
        "split": data.name,
        "images": len(data.images),
        "objects": data.num_objects(),
        "predictions": None if predictions is None else str(predictions),
        "model": model,
        "weights": None if weights is None else str(weights),
    }


def write_outputs(report: EvaluationReport, data: DatasetSplit, outputs: Sequence[Mapping], out_dir: Path,
                  source: dict, comparison: Comparison | None = None, num_examples: int = 8) -> list[Path]:
    """Write metrics.json, metrics.md and the three PNGs into ``out_dir``; returns the paths written.

    ``examples.png`` comes first: it is the only output that decodes images, so an image refused
    there (over the pixel limit) leaves no partial set of outputs.
    """
    from detect.evaluation.plots import plot_confusion_matrix, plot_examples, plot_pr_curves

    out_dir.mkdir(parents=True, exist_ok=True)
    examples = out_dir / "examples.png"
    if num_examples > 0:
        plot_examples(data, outputs, examples, num_examples, report.threshold.score_threshold)
    payload = {"source": source, **report.to_dict()}
    if comparison is not None:
        payload["ultralytics"] = comparison.to_dict()
    metrics_json, metrics_md = out_dir / "metrics.json", out_dir / "metrics.md"
    write_text_atomic(metrics_json, json.dumps(payload, indent=2, allow_nan=False) + "\n")
    markdown = f"# Evaluation of {source['predictions'] or source['model']} on {source['ground_truth']} " \
               f"({source['split']}, {source['images']} images)\n\n" + report.to_markdown()
    if comparison is not None:
        markdown += "\n" + comparison.to_markdown()
    write_text_atomic(metrics_md, markdown)
    written = [metrics_json, metrics_md, plot_pr_curves(report, out_dir / "pr_curves.png"),
               plot_confusion_matrix(report.confusion_matrix, report.class_names, out_dir / "confusion_matrix.png")]
    return written + ([examples] if num_examples > 0 else [])


def _print(report: EvaluationReport, comparison: Comparison | None, written: list[Path], console: object | None) -> None:
    from rich.console import Console

    console = Console() if console is None else console
    report.print_table(console)
    if comparison is not None:
        comparison.print_table(console)
    s = report.coco.stats
    console.print(f"AP {s['AP']:.4f}  AP50 {s['AP50']:.4f}  AP75 {s['AP75']:.4f}  ({report.backend})",
                  highlight=False)
    for path in written:
        console.print(f"wrote {path}", highlight=False)
