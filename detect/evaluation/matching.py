"""Detections matched to ground truth at one score threshold: per-class P/R/F1 and a confusion matrix.

Where the AP metrics sweep every score, these numbers describe the detector as deployed: keep
the detections with ``score >= score_threshold`` and match them, per image, greedily in
decreasing score order:

1. *Same class.* A detection takes the unmatched ground-truth box of its own class with the
   highest IoU, if that IoU is ``>= iou_threshold``: a true positive. Failing that, a detection
   that overlaps an ignored box of its class (``iscrowd`` or ``difficult``; IoU for difficult
   boxes, intersection over the detection's area for crowd regions) by ``>= iou_threshold`` is
   dropped: neither TP nor FP, like COCO and VOC do.
2. *Other class.* The detections and (non-ignored) ground truth left over are matched the same
   way, class-agnostically: each such pair is a confusion between two classes.
3. Whatever remains is background: an unmatched ground-truth box is a miss (predicted
   background), an unmatched detection a false alarm (true background).

False alarms are told apart by why they failed (the kinds of :data:`FALSE_ALARM_KINDS`, after
the TIDE error types of Bolya et al., 2020): a *duplicate* overlaps, by ``>= iou_threshold``, a
box that an earlier detection took (of either class); a *poor localisation* overlaps some
ground-truth box by ``LOCALISATION_IOU <= IoU < iou_threshold``; the rest hit *background*.

The confusion matrix is ``int64[C + 1, C + 1]``, rows = true class, columns = predicted class,
index ``C`` = background. Hence for class ``c``: ``TP = M[c, c]``, ``FP = M[:, c].sum() - TP``
(column), ``FN = M[c, :].sum() - TP`` (row).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detect.box_ops import box_ioa, box_iou
from detect.evaluation.inputs import (
    ImageDetections,
    ImageGroundTruth,
    StoredEvaluator,
    check_iou,
    nan_to_none,
)

FALSE_ALARM_KINDS = ("duplicate", "poor localisation", "background")
LOCALISATION_IOU = 0.1  # below it a false alarm is on background, not a badly placed box


def greedy_match(overlap: np.ndarray, threshold: float, allowed: np.ndarray) -> np.ndarray:
    """Match rows (detections, already in decreasing score order) to columns (ground truth).

    Each row takes the still-free column with the highest ``overlap >= threshold`` among those
    where ``allowed[row, col]``; ties go to the lowest column index.

    Args:
        overlap: ``float64[D, G]`` IoU.
        threshold: minimum overlap of a match.
        allowed: ``bool[D, G]`` pairs that may match at all.

    Returns:
        ``int64[D]``: the matched column of each row, ``-1`` if none.
    """
    matches = np.full(overlap.shape[0], -1, dtype=np.int64)
    free = np.ones(overlap.shape[1], dtype=bool)
    for d in range(overlap.shape[0]):
        candidates = np.where(allowed[d] & free & (overlap[d] >= threshold), overlap[d], -1.0)
        if candidates.size and candidates.max() >= 0:
            g = int(np.argmax(candidates))
            matches[d] = g
            free[g] = False
    return matches


def _ignored_overlap(gt: ImageGroundTruth, det_boxes: np.ndarray) -> np.ndarray:
    """Overlap of detections with ignored ground truth: IoA for crowd, IoU for difficult."""
    return np.where(gt.iscrowd[None, :], box_ioa(det_boxes, gt.boxes), box_iou(det_boxes, gt.boxes))


def match_image(gt: ImageGroundTruth, det: ImageDetections, iou_threshold: float,
                num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Confusion matrix ``int64[C + 1, C + 1]`` of one image and its false alarms by kind,
    ``int64[len(FALSE_ALARM_KINDS)]`` (the module docstring's rules).

    ``det`` must already be filtered by score.
    """
    order = np.argsort(-det.scores, kind="stable")
    boxes, labels = det.boxes[order], det.labels[order]
    iou = box_iou(boxes, gt.boxes)
    ignored = gt.iscrowd | gt.difficult
    same = labels[:, None] == gt.labels[None, :]
    stage1 = greedy_match(iou, iou_threshold, same & ~ignored[None, :])
    hits_ignored = (same & ignored[None, :] & (_ignored_overlap(gt, boxes) >= iou_threshold)).any(axis=1)
    left_det = (stage1 < 0) & ~hits_ignored
    left_gt = ~ignored
    left_gt[stage1[stage1 >= 0]] = False
    stage2 = np.full_like(stage1, -1)
    rows = np.flatnonzero(left_det)
    stage2[rows] = greedy_match(iou[rows], iou_threshold, np.broadcast_to(left_gt, (rows.size, left_gt.size)))
    left_gt[stage2[stage2 >= 0]] = False

    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for d in np.flatnonzero(stage1 >= 0):
        matrix[labels[d], labels[d]] += 1
    for d in np.flatnonzero(stage2 >= 0):
        matrix[gt.labels[stage2[d]], labels[d]] += 1
    alarms = np.flatnonzero(left_det & (stage2 < 0))
    for d in alarms:
        matrix[num_classes, labels[d]] += 1
    for g in np.flatnonzero(left_gt):
        matrix[gt.labels[g], num_classes] += 1
    return matrix, _false_alarm_kinds(iou[alarms], ~ignored, iou_threshold)


def _false_alarm_kinds(iou: np.ndarray, counted: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Counts ``int64[3]`` of duplicates, poor localisations and background hits among false
    alarms with IoU ``float64[A, G]`` to the ground truth, of which ``counted[G]`` are not ignored.

    A false alarm at ``IoU >= iou_threshold`` with a counted box found that box already taken.
    """
    iou = np.where(counted[None, :], iou, 0.0)
    duplicate = (iou >= iou_threshold).any(axis=1)
    poor = ~duplicate & (iou >= LOCALISATION_IOU).any(axis=1)
    background = ~duplicate & ~poor
    return np.array([duplicate.sum(), poor.sum(), background.sum()], dtype=np.int64)


@dataclass
class ThresholdMetrics:
    """Counts and rates at one score threshold and IoU.

    Attributes:
        class_names: ``C`` names.
        score_threshold, iou_threshold: the operating point.
        confusion_matrix: ``int64[C + 1, C + 1]``, rows true, columns predicted, ``C`` = background.
        false_alarms: ``int64[3]``, the background row's detections by kind
            (:data:`FALSE_ALARM_KINDS`: duplicate, poor localisation, background).
        tp, fp, fn: ``int64[C]`` per class (derived from the matrix, see the module docstring).
        precision, recall, f1: ``float64[C]``; NaN where undefined (no detection / no ground truth;
            F1 is 0 when P = R = 0).
    """

    class_names: list[str]
    score_threshold: float
    iou_threshold: float
    confusion_matrix: np.ndarray
    false_alarms: np.ndarray

    @property
    def tp(self) -> np.ndarray:
        return np.diag(self.confusion_matrix)[:-1].copy()

    @property
    def fp(self) -> np.ndarray:
        return self.confusion_matrix[:, :-1].sum(axis=0) - self.tp

    @property
    def fn(self) -> np.ndarray:
        return self.confusion_matrix[:-1, :].sum(axis=1) - self.tp

    @property
    def precision(self) -> np.ndarray:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> np.ndarray:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> np.ndarray:
        return _f1(self.precision, self.recall)

    def totals(self) -> dict[str, float]:
        """Micro-averaged ``precision``, ``recall``, ``f1`` and total ``tp``, ``fp``, ``fn``."""
        tp, fp, fn = int(self.tp.sum()), int(self.fp.sum()), int(self.fn.sum())
        p = float(_ratio(np.array([tp]), np.array([tp + fp]))[0])
        r = float(_ratio(np.array([tp]), np.array([tp + fn]))[0])
        f1 = float(_f1(np.array([p]), np.array([r]))[0])
        return {"precision": p, "recall": r, "f1": f1, "tp": tp, "fp": fp, "fn": fn}

    def to_dict(self) -> dict:
        """JSON-ready dict: operating point, totals, per-class rows and the matrix (NaN -> None)."""
        per_class = {
            name: {
                "precision": nan_to_none(float(self.precision[k])),
                "recall": nan_to_none(float(self.recall[k])),
                "f1": nan_to_none(float(self.f1[k])),
                "tp": int(self.tp[k]),
                "fp": int(self.fp[k]),
                "fn": int(self.fn[k]),
            }
            for k, name in enumerate(self.class_names)
        }
        totals = {k: nan_to_none(v) for k, v in self.totals().items()}
        return {
            "score_threshold": self.score_threshold,
            "iou_threshold": self.iou_threshold,
            **totals,
            "per_class": per_class,
            "confusion_matrix": self.confusion_matrix.tolist(),
            "false_alarms": dict(zip(FALSE_ALARM_KINDS, map(int, self.false_alarms))),
        }


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.full_like(num, np.nan), where=den > 0)


def _f1(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Harmonic mean; 0 when P = R = 0, NaN when either is undefined."""
    f1 = _ratio(2 * p * r, p + r)
    f1[(p == 0) & (r == 0)] = 0.0
    return f1


class DetectionMetrics(StoredEvaluator):
    """Evaluator (``reset / process / evaluate``) for :class:`ThresholdMetrics`.

    Args:
        class_names: names of the classes, label ``k`` is ``class_names[k]``.
        score_threshold: detections with ``score < score_threshold`` are dropped.
        iou_threshold: minimum IoU of a match, in (0, 1).
    """

    def __init__(self, class_names: Sequence[str], score_threshold: float = 0.25, iou_threshold: float = 0.5) -> None:
        super().__init__(class_names)
        if isinstance(score_threshold, bool) or not isinstance(score_threshold, (int, float)):
            raise TypeError(f"score_threshold: expected a float, got {type(score_threshold).__name__}")
        if not np.isfinite(score_threshold):
            raise ValueError(f"score_threshold: expected a finite float, got {score_threshold}")
        self.score_threshold = float(score_threshold)
        self.iou_threshold = check_iou(iou_threshold, "iou_threshold")

    def compute(self) -> ThresholdMetrics:
        """Match every processed image and sum the confusion matrices."""
        self._store.require_images(type(self).__name__)
        c = len(self.class_names)
        matrix = np.zeros((c + 1, c + 1), dtype=np.int64)
        alarms = np.zeros(len(FALSE_ALARM_KINDS), dtype=np.int64)
        for gt, det in zip(self._store.ground_truth, self._store.detections):
            keep = det.scores >= self.score_threshold
            kept = ImageDetections(det.image_id, det.boxes[keep], det.scores[keep], det.labels[keep])
            image_matrix, image_alarms = match_image(gt, kept, self.iou_threshold, c)
            matrix += image_matrix
            alarms += image_alarms
        return ThresholdMetrics(list(self.class_names), self.score_threshold, self.iou_threshold, matrix, alarms)

