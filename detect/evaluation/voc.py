"""Pascal VOC detection AP, following the VOC devkit's definition.

Per class and IoU threshold ``t``:

1. All detections of the class, over all images, are sorted by decreasing score (stable: ties
   keep image order, then detection order).
2. Each detection is compared with the class's ground truth in its image and takes the box of
   highest IoU (first on ties). If that IoU is ``> t`` (strictly, as in the devkit):
   a ``difficult`` box makes the detection neither TP nor FP; a box not yet taken makes it a TP
   (the box is now taken); a box already taken makes it a FP (duplicate). Otherwise it is a FP.
3. ``npos`` = number of non-difficult ground-truth boxes; ``recall = cumTP / npos``,
   ``precision = cumTP / (cumTP + cumFP)``.
4. AP: VOC2007 11-point interpolation (mean over ``r in {0, 0.1, ..., 1}`` of the highest
   precision at recall ``>= r``; the levels are ``np.arange(0, 1.1, 0.1)`` exactly as the Python
   devkit port computes them), or VOC2010+ all-point (area under the monotone precision envelope).

VOC has no crowd regions; a COCO ``iscrowd`` box is treated like a ``difficult`` one (never a
miss, detections on it ignored). A class without (non-difficult) ground truth has AP NaN and is
left out of the mean, as the devkit does.

IoU is plain area IoU of continuous xyxy boxes. The devkit's "+1 pixel" convention (inclusive
1-based pixel indices, ``w = xmax - xmin + 1``) is converted once, when a VOC XML file is loaded
(``(xmin - 1, ymin - 1, xmax, ymax)``, see ``detect.structures``); continuous widths then equal
the devkit's widths and no ``+1`` appears here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detect.box_ops import box_iou
from detect.evaluation.inputs import StoredEvaluator, check_iou, nan_to_none

# The 11 recall levels of VOC2007, computed as the devkit port does (0.1 * i, so 0.3 is
# 0.30000000000000004): a recall of exactly 0.3 does not reach that level.
VOC07_RECALL_LEVELS = np.arange(0.0, 1.1, 0.1)


def voc07_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2007 11-point interpolated AP of one class.

    Args:
        recall, precision: ``float64[D]`` along the detections sorted by decreasing score.
    """
    total = 0.0
    for level in VOC07_RECALL_LEVELS:
        reached = recall >= level
        total += float(precision[reached].max()) if reached.any() else 0.0
    return total / len(VOC07_RECALL_LEVELS)


def voc12_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2010+ all-point AP: area under the monotone (non-increasing) precision envelope.

    Args:
        recall, precision: ``float64[D]`` along the detections sorted by decreasing score.
    """
    r = np.concatenate(([0.0], recall, [1.0]))
    p = np.concatenate(([0.0], precision, [0.0]))
    envelope = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * envelope[steps + 1]))


def match_voc_image(
    det_boxes: np.ndarray, gt_boxes: np.ndarray, difficult: np.ndarray, iou_threshold: float
) -> np.ndarray:
    """Devkit matching of one image and class.

    Args:
        det_boxes: ``float64[D, 4]`` xyxy, already in decreasing score order.
        gt_boxes: ``float64[G, 4]`` xyxy; difficult: ``bool[G]``.

    Returns:
        ``int8[D]``: ``1`` TP, ``0`` FP, ``-1`` ignored (best match is a difficult box).
    """
    outcome = np.zeros(det_boxes.shape[0], dtype=np.int8)
    if gt_boxes.shape[0] == 0:
        return outcome
    iou = box_iou(det_boxes, gt_boxes)
    best = np.argmax(iou, axis=1)
    taken = np.zeros(gt_boxes.shape[0], dtype=bool)
    for d, g in enumerate(best):
        if iou[d, g] <= iou_threshold:
            continue
        if difficult[g]:
            outcome[d] = -1
        elif not taken[g]:
            outcome[d] = 1
            taken[g] = True
    return outcome


@dataclass
class VOCClassResult:
    """One class at one IoU threshold.

    Attributes:
        num_gt: ``npos``, non-difficult ground-truth boxes.
        num_det: detections counted (TP or FP; those ignored on difficult boxes are left out).
        recall, precision: ``float64[num_det]`` along the detections by decreasing score.
        ap07, ap12: 11-point and all-point AP; NaN when ``num_gt == 0``.
    """

    num_gt: int
    num_det: int
    recall: np.ndarray
    precision: np.ndarray
    ap07: float
    ap12: float


def _ap_name(iou: float) -> str:
    return f"AP{round(iou * 100)}"


def _nanmean(values: list[float]) -> float:
    defined = [v for v in values if not math.isnan(v)]
    return float(np.mean(defined)) if defined else math.nan


@dataclass
class VOCResult:
    """Per-class VOC results for every IoU threshold.

    Attributes:
        classes: ``classes[iou][k]`` is class ``k`` at IoU threshold ``iou``.
        use_07_metric: which AP is the primary ``AP@<iou>`` number.
    """

    class_names: list[str]
    iou_thresholds: list[float]
    use_07_metric: bool
    classes: dict[float, list[VOCClassResult]]

    def mean_ap(self, iou: float, use_07_metric: bool | None = None) -> float:
        """Mean AP over classes with ground truth (NaN if none has any)."""
        use07 = self.use_07_metric if use_07_metric is None else use_07_metric
        return _nanmean([c.ap07 if use07 else c.ap12 for c in self.classes[iou]])

    def to_dict(self) -> dict:
        """``{"VOC07_AP50": ..., "VOC12_AP50": ..., "AP@0.5": primary, "per_class": {...}}``.

        One ``VOC07_APxx`` / ``VOC12_APxx`` / ``AP@t`` triple for each IoU threshold ``t``;
        ``per_class[name]`` holds the same keys for the class plus ``num_gt``. NaN marks a class
        without ground truth.
        """
        out: dict = {}
        per_class: dict = {name: {} for name in self.class_names}
        for iou in self.iou_thresholds:
            name07, name12, primary = f"VOC07_{_ap_name(iou)}", f"VOC12_{_ap_name(iou)}", f"AP@{iou:g}"
            out[name07] = self.mean_ap(iou, True)
            out[name12] = self.mean_ap(iou, False)
            out[primary] = out[name07] if self.use_07_metric else out[name12]
            for name, c in zip(self.class_names, self.classes[iou]):
                chosen = c.ap07 if self.use_07_metric else c.ap12
                per_class[name].update({primary: chosen, name07: c.ap07, name12: c.ap12})
        for name, c in zip(self.class_names, self.classes[self.iou_thresholds[0]]):
            per_class[name]["num_gt"] = c.num_gt
        out["per_class"] = per_class
        return out

    def to_json_dict(self) -> dict:
        """:meth:`to_dict` with NaN replaced by ``None``."""
        d = self.to_dict()
        per_class = {n: {k: nan_to_none(v) for k, v in row.items()} for n, row in d.pop("per_class").items()}
        return {**{k: nan_to_none(v) for k, v in d.items()}, "per_class": per_class}


class VOCEvaluator(StoredEvaluator):
    """Pascal VOC evaluator: ``reset() / process(targets, outputs) / evaluate() -> dict``.

    Args:
        class_names: names of the classes; label ``k`` is ``class_names[k]``.
        iou_thresholds: IoU thresholds, each in (0, 1); VOC uses ``(0.5,)``.
        use_07_metric: the primary ``AP@t`` numbers use VOC2007 11-point interpolation if True,
            VOC2010+ all-point AP otherwise. Both are always reported.
    """

    def __init__(
        self, class_names: Sequence[str], iou_thresholds: Sequence[float] = (0.5,), use_07_metric: bool = False
    ) -> None:
        super().__init__(class_names)
        if isinstance(iou_thresholds, (int, float)):
            iou_thresholds = (iou_thresholds,)
        thresholds = [check_iou(t, "iou_thresholds") for t in iou_thresholds]
        names = [_ap_name(t) for t in thresholds]
        if not thresholds or len(set(names)) != len(names):
            raise ValueError(
                f"iou_thresholds: expected distinct thresholds (to the percent), got {list(iou_thresholds)}"
            )
        self.iou_thresholds = thresholds
        self.use_07_metric = bool(use_07_metric)


    def compute(self) -> VOCResult:
        """Per-class AP for every IoU threshold."""
        self._store.require_images(type(self).__name__)
        classes = {t: self._evaluate(t) for t in self.iou_thresholds}
        return VOCResult(list(self.class_names), list(self.iou_thresholds), self.use_07_metric, classes)

    def _evaluate(self, iou_threshold: float) -> list[VOCClassResult]:
        num_classes = len(self.class_names)
        npos = np.zeros(num_classes, dtype=np.int64)
        scores: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
        outcomes: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
        for gt, det in zip(self._store.ground_truth, self._store.detections):
            ignored = gt.difficult | gt.iscrowd
            npos += np.bincount(gt.labels[~ignored], minlength=num_classes)
            order = np.argsort(-det.scores, kind="stable")
            for k in np.unique(det.labels):
                d, g = order[det.labels[order] == k], gt.labels == k
                scores[k].append(det.scores[d])
                outcomes[k].append(match_voc_image(det.boxes[d], gt.boxes[g], ignored[g], iou_threshold))
        return [_class_result(int(npos[k]), scores[k], outcomes[k]) for k in range(num_classes)]


def _class_result(npos: int, scores: list[np.ndarray], outcomes: list[np.ndarray]) -> VOCClassResult:
    """Precision/recall and AP of one class from its per-image match outcomes (``1``/``0``/``-1``).

    Matching is independent across images, so a stable global sort by score of the per-image
    outcomes (each in stable score order, images in arrival order) reproduces the devkit's single
    pass over all detections of the class.
    """
    scores_all = np.concatenate(scores) if scores else np.zeros(0)
    outcome_all = np.concatenate(outcomes) if outcomes else np.zeros(0, dtype=np.int8)
    outcome_all = outcome_all[np.argsort(-scores_all, kind="stable")]
    outcome_all = outcome_all[outcome_all >= 0]
    tp = np.cumsum(outcome_all == 1)
    fp = np.cumsum(outcome_all == 0)
    precision = tp / np.maximum(tp + fp, 1)
    if npos == 0:
        return VOCClassResult(0, int(outcome_all.size), np.full(tp.shape, np.nan), precision, math.nan, math.nan)
    recall = tp / npos
    return VOCClassResult(
        npos, int(outcome_all.size), recall, precision, voc07_ap(recall, precision), voc12_ap(recall, precision)
    )
