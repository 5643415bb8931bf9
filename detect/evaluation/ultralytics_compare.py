"""ultralytics' own box metrics on the same detections, side by side with ours (pycocotools).

:func:`ultralytics_metrics` calls ultralytics as a library, exactly the pieces its
``DetectionValidator`` uses, with no trainer and no dataloader:

1. per image, detections with ``score >= conf`` sorted by decreasing score and cut to ``max_det``
   (what its NMS hands the validator; defaults ``conf=0.001``, ``max_det=300``);
2. ``ultralytics.utils.metrics.box_iou`` (ground truth x detections) and
   ``DetectionValidator.match_predictions`` give the ``bool[D, 10]`` TP matrix over IoU
   0.50:0.05:0.95 (greedy: each detection, best score first, takes the free target of its class
   with the highest IoU);
3. ``ultralytics.utils.metrics.DetMetrics`` (``update_stats`` / ``process``, i.e. ``ap_per_class``)
   turns the TP matrices into P, R, mAP50, mAP75, mAP50-95.

Every ground-truth box is a target: ultralytics has no ``iscrowd`` or ``difficult`` flag.
The reasons the two sets of numbers differ are in :data:`EXPLANATION`; :class:`Comparison`
also counts how many boxes each reason touches in this dataset.

Bound from interpolation alone. When both libraries match the same detections (no crowd
regions, at most 100 detections per image and class, at most 300 per image, scores >= 0.001,
no tied scores), their precision envelopes are the same step function ``env`` of recall. At
a recall point ``x_i = i/100`` COCO takes ``c_i`` = env at the first detection with recall >=
``x_i``. ultralytics' linear interpolation runs between the *last* point of one recall level
and the first point of the next, which share the same envelope value, so ``u_i = c_i``
except where ``x_i`` equals a recall level exactly: there ``u_i`` is the envelope of the next
level (0 after the last). Hence ``u_i <= c_i`` and the losses telescope:
``0 <= sum(c_i - u_i) <= 1``. With ``AP_coco = sum(c_i) / 101`` and
``AP_ultra = trapz = (sum(u_i) - (u_0 + u_100) / 2) / 100``:
``AP_coco - 0.02 <= 1.01 AP_coco - 0.02 <= AP_ultra <= 1.01 AP_coco <= AP_coco + 0.01``
for every class and IoU threshold, hence for the means too (both average the classes with
ground truth). Perfect detections give ``1.0`` (COCO) and ``0.995`` (ultralytics).
"""

from __future__ import annotations

import math
import tempfile
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from detect.evaluation.inputs import ImageStore, check_class_names, nan_to_none
from detect.evaluation.report import EvaluationReport

COCO_MAX_DETS = 100
ULTRALYTICS_MAX_DET = 300
ULTRALYTICS_CONF = 0.001

EXPLANATION_ITEMS = (
    "Interpolation: both sample precision at the 101 recall points 0, 0.01, ..., 1 of the monotone "
    "precision envelope. COCO takes at each point r the envelope at the first detection whose recall "
    "is >= r (a step) and averages the 101 values. ultralytics adds the end points (0, 1) and (1, 0), "
    "interpolates the envelope linearly between detections and integrates with the trapezoid rule. Its "
    "curve reaches the (1, 0) end point at recall 1, so perfect detections score 0.995 in ultralytics "
    "and 1.000 in COCO. With the same matches, ultralytics' AP of a class lies within "
    "[COCO AP - 0.02, COCO AP + 0.01] (see detect/evaluation/ultralytics_compare.py).",
    "Crowd / difficult: COCO never counts a detection on an iscrowd region as a false positive nor the "
    "region as a miss; ultralytics has no such flag: the region is an ordinary target.",
    "Max detections: COCO keeps the 100 best detections per image and class; ultralytics' validator "
    "keeps the 300 best per image (its NMS max_det) and drops scores below 0.001 (its conf).",
    "Area ranges: COCO also reports APs/APm/APl (area < 32^2, < 96^2, larger); ultralytics has no size "
    "breakdown. Both headline numbers use every size.",
    "Score threshold: neither mAP uses --score-threshold. Our P/R/F1 are micro-averaged at that "
    "threshold; ultralytics' P and R are class means at the confidence that maximises its smoothed mean "
    "F1 curve: a different operating point.",
    "IoU: ultralytics computes IoU in float32 (eps 1e-7), COCO in float64; only pairs within ~1e-6 of "
    "a threshold can match differently.",
)
EXPLANATION = "Why pycocotools and ultralytics differ on the same detections:\n" + "\n".join(
    textwrap.fill(item, width=96, initial_indent="- ", subsequent_indent="  ") for item in EXPLANATION_ITEMS
)


@dataclass
class UltralyticsMetrics:
    """ultralytics' box metrics, as its validator reports them.

    Attributes:
        precision, recall: mean over classes with targets, at the max-mean-F1 confidence.
        map50, map75, map: mAP at IoU 0.5, 0.75 and averaged over 0.50:0.95.
        per_class_ap50, per_class_ap: class name -> AP (only classes with at least one target).
        num_targets: targets counted (every box, crowd and difficult included).
        num_detections: detections used after the ``conf`` / ``max_det`` filter.
    """

    precision: float
    recall: float
    map50: float
    map75: float
    map: float
    per_class_ap50: dict[str, float]
    per_class_ap: dict[str, float]
    num_targets: int
    num_detections: int


def _validator(save_dir: Path) -> object:
    from ultralytics.models.yolo.detect import DetectionValidator

    return DetectionValidator(save_dir=save_dir)


def _image_stats(validator: object, boxes: np.ndarray, labels: np.ndarray, det_boxes: np.ndarray,
                 det_scores: np.ndarray, det_labels: np.ndarray) -> dict[str, np.ndarray]:
    """One image's ``update_stats`` dict: TP matrix from ultralytics' ``box_iou`` + ``match_predictions``."""
    from ultralytics.utils.metrics import box_iou

    n_iou = int(validator.iouv.numel())
    target_cls = labels.astype(np.float64)
    if len(labels) == 0 or len(det_labels) == 0:
        tp = np.zeros((len(det_labels), n_iou), dtype=bool)
    else:
        iou = box_iou(torch.from_numpy(boxes).float(), torch.from_numpy(det_boxes).float())
        pred_cls = torch.from_numpy(det_labels.astype(np.float32))
        tp = validator.match_predictions(pred_cls, torch.from_numpy(labels.astype(np.float32)), iou).numpy()
    return {
        "tp": tp,
        "conf": det_scores.astype(np.float64),
        "pred_cls": det_labels.astype(np.float64),
        "target_cls": target_cls,
        "target_img": np.unique(target_cls),
    }


def _select(det_boxes: np.ndarray, det_scores: np.ndarray, det_labels: np.ndarray, conf: float,
            max_det: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detections ``score >= conf``, decreasing score (stable), at most ``max_det``."""
    keep = np.flatnonzero(det_scores >= conf)
    order = keep[np.argsort(-det_scores[keep], kind="stable")][:max_det]
    return det_boxes[order], det_scores[order], det_labels[order]


def ultralytics_metrics(
    class_names: Sequence[str],
    targets: Sequence[Mapping],
    outputs: Sequence[Mapping],
    conf: float = ULTRALYTICS_CONF,
    max_det: int = ULTRALYTICS_MAX_DET,
) -> UltralyticsMetrics:
    """ultralytics' P, R, mAP50, mAP75, mAP50-95 of ``outputs`` against ``targets``.

    Args:
        class_names: ``C`` names; labels are 0-based.
        targets, outputs: one dict per image, same order (``detect.evaluation.inputs``): boxes
            xyxy absolute pixels. Crowd and difficult flags are ignored, as ultralytics does.
        conf: detections below this score are dropped (ultralytics' val ``conf``).
        max_det: detections kept per image, best first (ultralytics' ``max_det``).
    """
    from ultralytics.utils.metrics import DetMetrics

    names = check_class_names(class_names)
    store = ImageStore(len(names))
    store.add(targets, outputs)
    store.require_images("ultralytics_metrics")
    metrics = DetMetrics(names=dict(enumerate(names)))
    used = 0
    with tempfile.TemporaryDirectory(prefix="ultralytics-val-") as tmp:
        validator = _validator(Path(tmp))
        for gt, det in zip(store.ground_truth, store.detections):
            boxes, scores, labels = _select(det.boxes, det.scores, det.labels, conf, max_det)
            used += len(scores)
            stats = _image_stats(validator, gt.boxes, gt.labels, boxes, scores, labels)
            metrics.update_stats({**stats, "im_name": str(gt.image_id)})
    metrics.process(save_dir=Path("."), plot=False)
    return _collect(metrics, names, store, used)


def _collect(metrics: object, names: list[str], store: ImageStore, used: int) -> UltralyticsMetrics:
    box = metrics.box
    ap50 = np.asarray(box.ap50, dtype=np.float64)
    ap = np.asarray(box.ap, dtype=np.float64)
    index = [int(i) for i in box.ap_class_index] if len(ap) else []
    return UltralyticsMetrics(
        precision=float(box.mp),
        recall=float(box.mr),
        map50=float(box.map50),
        map75=float(box.map75),
        map=float(box.map),
        per_class_ap50={names[k]: float(ap50[i]) for i, k in enumerate(index)},
        per_class_ap={names[k]: float(ap[i]) for i, k in enumerate(index)},
        num_targets=int(sum(len(gt.labels) for gt in store.ground_truth)),
        num_detections=used,
    )


def difference_causes(targets: Sequence[Mapping], outputs: Sequence[Mapping], num_classes: int,
                      conf: float = ULTRALYTICS_CONF, max_det: int = ULTRALYTICS_MAX_DET) -> dict[str, int]:
    """How many boxes each known cause of difference touches in this data.

    Keys: ``crowd_targets`` and ``difficult_targets`` (ignored by COCO/VOC, targets for
    ultralytics), ``coco_dropped_over_100_per_class`` (detections beyond COCO's 100 per image and
    class), ``ultralytics_dropped_low_conf`` (score < ``conf``), ``ultralytics_dropped_over_max_det``.
    """
    store = ImageStore(num_classes)
    store.add(targets, outputs)
    causes = dict.fromkeys(("crowd_targets", "difficult_targets", "coco_dropped_over_100_per_class",
                            "ultralytics_dropped_low_conf", "ultralytics_dropped_over_max_det"), 0)
    for gt, det in zip(store.ground_truth, store.detections):
        causes["crowd_targets"] += int(gt.iscrowd.sum())
        causes["difficult_targets"] += int(gt.difficult.sum())
        per_class = np.bincount(det.labels, minlength=num_classes)
        causes["coco_dropped_over_100_per_class"] += int(np.clip(per_class - COCO_MAX_DETS, 0, None).sum())
        kept = int((det.scores >= conf).sum())
        causes["ultralytics_dropped_low_conf"] += len(det.scores) - kept
        causes["ultralytics_dropped_over_max_det"] += max(kept - max_det, 0)
    return causes


@dataclass
class Comparison:
    """Our numbers (pycocotools / faster-coco-eval and our P/R) next to ultralytics'."""

    report: EvaluationReport
    ultralytics: UltralyticsMetrics
    causes: dict[str, int] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, float, float]]:
        """``(metric, ours, ultralytics)`` rows; per-class rows are ``AP50 <name>`` / ``AP <name>``."""
        stats, u = self.report.coco.stats, self.ultralytics
        totals = self.report.threshold.totals()
        rows = [
            ("mAP50-95", stats["AP"], u.map),
            ("mAP50", stats["AP50"], u.map50),
            ("mAP75", stats["AP75"], u.map75),
            ("precision", totals["precision"], u.precision),
            ("recall", totals["recall"], u.recall),
        ]
        for name in self.report.class_names:
            if name in u.per_class_ap50:
                rows.append((f"AP50 {name}", self.report.coco.per_class_AP50[name], u.per_class_ap50[name]))
                rows.append((f"AP {name}", self.report.coco.per_class_AP[name], u.per_class_ap[name]))
        return rows

    def to_dict(self) -> dict:
        """JSON-ready dict: the rows, the counts of each cause, and :data:`EXPLANATION`."""
        return {
            "ours_backend": self.report.backend,
            "rows": [{"metric": m, "ours": nan_to_none(a), "ultralytics": nan_to_none(b),
                      "difference": nan_to_none(b - a)} for m, a, b in self.rows()],
            "causes": dict(self.causes),
            "ultralytics_targets": self.ultralytics.num_targets,
            "ultralytics_detections": self.ultralytics.num_detections,
            "explanation": list(EXPLANATION_ITEMS),
        }

    def to_markdown(self) -> str:
        """A Markdown table of :meth:`rows`, the cause counts and the explanation."""
        lines = [f"### ours ({self.report.backend}) vs ultralytics", "",
                 "| metric | ours | ultralytics | ultralytics - ours |", "|---|---|---|---|"]
        lines += [f"| {m} | {_cell(a)} | {_cell(b)} | {_cell(b - a, '+.4f')} |" for m, a, b in self.rows()]
        lines += ["", "| cause | boxes |", "|---|---|"] + [f"| {k} | {v} |" for k, v in self.causes.items()]
        p_note = (f"Our precision/recall: micro-averaged at score >= {self.report.threshold.score_threshold:g}; "
                  "ultralytics': class means at its max-F1 confidence.")
        return "\n".join(lines) + "\n\n" + p_note + "\n\n" + EXPLANATION + "\n"

    def print_table(self, console: object | None = None) -> None:
        """Print the side-by-side table, the cause counts and the explanation with ``rich``."""
        from rich.console import Console
        from rich.table import Table

        console = Console() if console is None else console
        table = Table(title=f"ours ({self.report.backend}) vs ultralytics {_ultralytics_version()}")
        for col in ("metric", "ours", "ultralytics", "ultralytics - ours"):
            table.add_column(col, justify="left" if col == "metric" else "right")
        for metric, ours, theirs in self.rows():
            table.add_row(metric, _cell(ours), _cell(theirs), _cell(theirs - ours, "+.4f"))
        console.print(table)
        console.print("boxes touched by each cause: " + ", ".join(f"{k}={v}" for k, v in self.causes.items()))
        console.print("Why pycocotools and ultralytics differ on the same detections:", highlight=False)
        for item in EXPLANATION_ITEMS:
            console.print(f"- {item}", markup=False, highlight=False)


def _cell(value: float, spec: str = ".4f") -> str:
    """A table cell: ``-`` for NaN (undefined, e.g. precision without detections)."""
    return "-" if math.isnan(value) else format(value, spec)


def _ultralytics_version() -> str:
    import ultralytics

    return ultralytics.__version__


def compare_with_ultralytics(report: EvaluationReport, targets: Sequence[Mapping], outputs: Sequence[Mapping],
                             conf: float = ULTRALYTICS_CONF, max_det: int = ULTRALYTICS_MAX_DET) -> Comparison:
    """ultralytics' metrics on the same ``targets``/``outputs`` that made ``report``, with the cause counts."""
    theirs = ultralytics_metrics(report.class_names, targets, outputs, conf=conf, max_det=max_det)
    causes = difference_causes(targets, outputs, len(report.class_names), conf=conf, max_det=max_det)
    return Comparison(report, theirs, causes)
