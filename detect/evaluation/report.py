"""One report of a detector on one dataset: COCO, VOC and score-threshold metrics together.

``evaluate_all`` runs the three evaluators on the same targets/outputs and returns an
:class:`EvaluationReport`, which renders to JSON, Markdown and a rich terminal table and keeps
the arrays the plots need (COCO interpolated precision at IoU 0.5, VOC recall/precision per
class, the confusion matrix).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detect.evaluation.coco import COCOEvaluator, COCOResult
from detect.evaluation.inputs import nan_to_none
from detect.evaluation.matching import LOCALISATION_IOU, DetectionMetrics, ThresholdMetrics
from detect.evaluation.voc import VOCEvaluator, VOCResult

PER_CLASS_COLUMNS = ("class", "GT", "AP", "AP50", "VOC_AP50", "P", "R", "F1", "TP", "FP", "FN")


@dataclass
class EvaluationReport:
    """Results of :func:`evaluate_all`.

    Attributes:
        class_names: ``C`` names; class ``k`` is row/column ``k`` everywhere.
        coco: COCO numbers, per-class AP and the full precision array.
        voc: VOC per-class AP (07 and 12) and PR curves.
        threshold: counts, P/R/F1 and the confusion matrix at one score threshold.
        backend: the COCO backend used.
    """

    class_names: list[str]
    coco: COCOResult
    voc: VOCResult
    threshold: ThresholdMetrics
    backend: str = "pycocotools"

    @property
    def confusion_matrix(self) -> np.ndarray:
        """``int64[C + 1, C + 1]``, rows true class, columns predicted, index ``C`` = background."""
        return self.threshold.confusion_matrix

    @property
    def voc_iou(self) -> float:
        """The first VOC IoU threshold (0.5 by default): the one in the tables."""
        return self.voc.iou_thresholds[0]

    def coco_pr_curves(self, iou: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        """``(recall_thresholds float64[R], precision float64[C, R])`` from COCOeval, -1 = undefined."""
        return self.coco.recall_thresholds, self.coco.pr_curve(iou)

    def voc_pr_curves(self, iou: float | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Class name -> ``(recall float64[D], precision float64[D])`` at VOC IoU ``iou``."""
        results = self.voc.classes[self.voc_iou if iou is None else iou]
        return {name: (r.recall, r.precision) for name, r in zip(self.class_names, results)}

    def summary(self) -> dict[str, float]:
        """Headline numbers: the 12 COCO stats, VOC mAP and micro P/R/F1 at the threshold."""
        voc = self.voc.to_dict()
        voc_keys = [k for k in voc if k != "per_class"]
        totals = self.threshold.totals()
        return {
            **self.coco.stats,
            **{k: voc[k] for k in voc_keys},
            **{k: totals[k] for k in ("precision", "recall", "f1")},
        }

    def per_class_rows(self) -> list[dict]:
        """One dict per class, keys :data:`PER_CLASS_COLUMNS` (AP/AP50 from COCO, -1 = no GT)."""
        voc = self.voc.classes[self.voc_iou]
        t = self.threshold
        p, r, f1, tp, fp, fn = t.precision, t.recall, t.f1, t.tp, t.fp, t.fn
        return [
            {
                "class": name,
                "GT": voc[k].num_gt,
                "AP": self.coco.per_class_AP[name],
                "AP50": self.coco.per_class_AP50[name],
                "VOC_AP50": voc[k].ap07 if self.voc.use_07_metric else voc[k].ap12,
                "P": float(p[k]),
                "R": float(r[k]),
                "F1": float(f1[k]),
                "TP": int(tp[k]),
                "FP": int(fp[k]),
                "FN": int(fn[k]),
            }
            for k, name in enumerate(self.class_names)
        ]

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN -> ``None``; arrays -> lists)."""
        recall_thrs, coco_pr = self.coco_pr_curves()
        return {
            "class_names": list(self.class_names),
            "backend": self.backend,
            "coco": self.coco.to_dict(),
            "voc": self.voc.to_json_dict(),
            "threshold": self.threshold.to_dict(),
            "per_class": [{k: nan_to_none(v) for k, v in row.items()} for row in self.per_class_rows()],
            "curves": {
                "coco_recall_thresholds": recall_thrs.tolist(),
                "coco_precision_iou50": coco_pr.tolist(),
                "voc": {
                    name: {"recall": _json_list(rec), "precision": _json_list(prec)}
                    for name, (rec, prec) in self.voc_pr_curves().items()
                },
            },
        }

    def to_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON to ``path`` (parents created); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        return path

    def to_markdown(self) -> str:
        """Markdown tables: COCO numbers, VOC numbers, the per-class table, the confusion matrix."""
        t = self.threshold
        voc = {k: v for k, v in self.voc.to_dict().items() if k != "per_class"}
        sections = [
            f"### COCO box metrics ({self.backend})",
            _md_table(list(self.coco.stats), [[_fmt(v) for v in self.coco.stats.values()]]),
            "### Pascal VOC",
            _md_table(list(voc), [[_fmt(v) for v in voc.values()]]),
            f"### Per class (P/R/F1 at score >= {t.score_threshold:g}, IoU >= {t.iou_threshold:g})",
            _md_table(list(PER_CLASS_COLUMNS), [[_fmt(v) for v in row.values()] for row in self.per_class_rows()]),
            "### Confusion matrix (rows: true class, columns: predicted class)",
            _md_table(*self._matrix_cells()),
            self._false_alarm_line(),
        ]
        return "\n\n".join(sections) + "\n"

    def print_table(self, console: object | None = None) -> None:
        """Print the summary, per-class table and confusion matrix with ``rich``."""
        from rich.console import Console
        from rich.table import Table

        console = Console() if console is None else console
        summary = Table(title=f"Detection metrics (COCO via {self.backend})")
        summary.add_column("metric")
        summary.add_column("value", justify="right")
        for key, value in self.summary().items():
            summary.add_row(key, _fmt(value))
        per_class = Table(title="Per class")
        for col in PER_CLASS_COLUMNS:
            per_class.add_column(col, justify="left" if col == "class" else "right")
        for row in self.per_class_rows():
            per_class.add_row(*[_fmt(v) for v in row.values()])
        header, rows = self._matrix_cells()
        matrix = Table(title="Confusion matrix (rows true, columns predicted)")
        for i, col in enumerate(header):
            matrix.add_column(col, justify="left" if i == 0 else "right")
        for row in rows:
            matrix.add_row(*row)
        for table in (summary, per_class, matrix):
            console.print(table)
        console.print(self._false_alarm_line())

    def _false_alarm_line(self) -> str:
        counts = self.threshold.to_dict()["false_alarms"]
        kinds = ", ".join(f"{kind} {n}" for kind, n in counts.items())
        return (f"False alarms (the background row) by kind: {kinds} (duplicate: IoU >= "
                f"{self.threshold.iou_threshold:g} with a box already found; poor "
                f"localisation: {LOCALISATION_IOU:g} <= IoU < {self.threshold.iou_threshold:g} with some box).")

    def _matrix_cells(self) -> tuple[list[str], list[list[str]]]:
        names = [*self.class_names, "background"]
        header = ["true \\ pred", *names]
        rows = [[names[i], *map(str, row)] for i, row in enumerate(self.confusion_matrix.tolist())]
        return header, rows


def _json_list(values: np.ndarray) -> list:
    return [nan_to_none(float(v)) for v in values]


def _fmt(value: object) -> str:
    """Cell text: ints as is, floats to 3 decimals, ``-`` for NaN/None/-1 (undefined)."""
    if value is None:
        return "-"
    if isinstance(value, (bool, str)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    return "-" if math.isnan(value) or value == -1.0 else f"{value:.3f}"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def evaluate_all(
    class_names: Sequence[str],
    targets: Sequence[Mapping],
    outputs: Sequence[Mapping],
    score_threshold: float = 0.25,
    iou: float = 0.5,
    backend: str = "pycocotools",
    use_07_metric: bool = False,
    voc_iou_thresholds: Sequence[float] = (0.5,),
) -> EvaluationReport:
    """Run the COCO, VOC and threshold evaluators on one dataset's predictions.

    Args:
        class_names: ``C`` class names, label ``k`` is ``class_names[k]``.
        targets, outputs: one dict per image, same order (see ``detect.evaluation.inputs``):
            boxes xyxy absolute pixels, labels int64 0-based.
        score_threshold: detections kept for P/R/F1 and the confusion matrix.
        iou: IoU threshold of P/R/F1 and the confusion matrix.
        backend: COCO backend, ``"pycocotools"`` or ``"faster-coco-eval"``.
        use_07_metric: VOC2007 11-point AP as the primary VOC number (else all-point).
        voc_iou_thresholds: IoU thresholds of the VOC evaluator; the first is the tables' one.
    """
    coco = COCOEvaluator(class_names, backend=backend)
    voc = VOCEvaluator(class_names, iou_thresholds=voc_iou_thresholds, use_07_metric=use_07_metric)
    metrics = DetectionMetrics(class_names, score_threshold=score_threshold, iou_threshold=iou)
    for evaluator in (coco, voc, metrics):
        evaluator.process(targets, outputs)
    return EvaluationReport(list(coco.class_names), coco.compute(), voc.compute(), metrics.compute(), backend)
