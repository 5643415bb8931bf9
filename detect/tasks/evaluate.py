"""The ``detect eval`` job: ground truth + (a results file | a detector) -> metrics, tables, plots.

Outputs in ``out_dir``: ``metrics.json`` (the report, plus the source and, when asked, the
ultralytics comparison), ``metrics.md``, ``pr_curves.png``, ``confusion_matrix.png`` and
``examples.png``. The rich tables go to the terminal.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from detect.data.dataset import target_from_record
from detect.data.formats import available_splits, detect_format, load_split
from detect.evaluation.outputs import write_outputs
from detect.evaluation.report import EvaluationReport, evaluate_all
from detect.evaluation.results_io import read_results
from detect.inference.evaluate import evaluate_detector
from detect.inference.model_files import load_spec
from detect.models.loading import DetectorSpec, input_sizes
from detect.structures import DatasetSplit

if TYPE_CHECKING:
    from detect.evaluation.ultralytics_compare import Comparison

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


def _check_predictions(predictions: Path | None, model: str | None, checkpoint: Path | None, weights: Path | None,
                       image_size: Sequence[int]) -> None:
    if predictions is None:
        return  # the detector's own settings are checked by DetectorSpec
    if model is not None or checkpoint is not None:
        raise ValueError("expected exactly one source of detections: a predictions file/folder, a model name "
                         "or a checkpoint")
    if weights is not None or image_size:
        raise ValueError("--weights and --image-size go with --model or --checkpoint, not with --predictions")


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
        model, weights, image_size: a registry detector, its local weights and input size, run over
            the split's images instead of ``predictions`` (``image_size`` also replaces a
            ``checkpoint``'s input size; several sizes run it as a multi-size test); see
            :class:`detect.models.loading.DetectorSpec`.
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
    _check_predictions(predictions, model, checkpoint, weights, input_sizes(image_size))
    spec = None if predictions is not None else DetectorSpec(model, checkpoint, weights, input_sizes(image_size))
    if batch_size <= 0:
        raise ValueError(f"batch size: expected a positive integer, got {batch_size}")
    if num_examples < 0:
        raise ValueError(f"examples: expected 0 or more images, got {num_examples}")
    data = load_ground_truth(gt, split, fmt)
    if spec is None:
        outputs = read_results(data, Path(predictions), predictions_format)
        targets = [target_from_record(r) for r in data.images]
        report = evaluate_all(data.class_names, targets, outputs, score_threshold=score_threshold, iou=iou,
                              backend=backend)
    else:
        net, _ = load_spec(spec, device, data.class_names)
        evaluation = evaluate_detector(net, data, device=device, batch_size=batch_size,
                                       score_threshold=score_threshold, iou=iou, backend=backend)
        report, targets, outputs = evaluation.report, evaluation.targets, evaluation.outputs
    comparison = None
    if compare_ultralytics:
        from detect.evaluation.ultralytics_compare import compare_with_ultralytics

        comparison = compare_with_ultralytics(report, targets, outputs)
    source = _source(gt, data, predictions, None if spec is None else spec.label, weights)
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
