"""The files of one evaluation: ``metrics.json``, ``metrics.md``, ``pr_curves.png``,
``confusion_matrix.png`` and ``examples.png``, written by ``detect eval`` and by the trainer's
final report alike."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from classify.base.atomic import write_text_atomic
from detect.evaluation.report import EvaluationReport
from detect.structures import DatasetSplit

if TYPE_CHECKING:
    from detect.evaluation.ultralytics_compare import Comparison

OUTPUT_FILES = ("metrics.json", "metrics.md", "pr_curves.png", "confusion_matrix.png", "examples.png")


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
