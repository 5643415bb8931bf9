"""COCO box mAP computed by pycocotools' ``COCOeval`` (or faster-coco-eval), fully in memory.

The evaluator turns the project's targets/outputs (xyxy absolute pixels, 0-based labels) into
COCO objects in memory: boxes become ``[x, y, w, h]`` and category ids are ``label + 1``. No
temporary file is written, so it runs inside a training loop. The numbers are pycocotools' own
``COCOeval.stats`` and ``COCOeval.eval["precision"]``; this module only reads them.

Per-image flags: ``iscrowd`` is passed through (crowd regions are matched but never missed);
``difficult`` has no COCO meaning and is ignored here (the VOC evaluator uses it). The targets'
``area`` (the annotation file's, e.g. COCO's segmentation area; the box area where missing) is
the ground truth's ``area``, which sets the small/medium/large ranges as in pycocotools.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detect.evaluation.backends import BACKENDS
from detect.evaluation.inputs import StoredEvaluator

_AP_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
_AR_AREA_KEYS = ("ARs", "ARm", "ARl")


@dataclass
class COCOResult:
    """What one COCO evaluation produced.

    Attributes:
        stats: the 12 standard numbers in pycocotools' order: ``AP, AP50, AP75, APs, APm, APl,
            AR{max_dets[0]}, AR{max_dets[1]}, AR{max_dets[2]}, ARs, ARm, ARl`` (``-1`` where
            pycocotools gives ``-1``: nothing to measure, e.g. no ground truth of that size).
        per_class_AP: class name -> AP@[.5:.95] (area ``all``, ``max_dets[-1]``), ``-1`` if the
            class has no ground truth.
        per_class_AP50: class name -> AP@.5, same conventions.
        precision: pycocotools' ``eval["precision"]``, ``float64[T, R, K, A, M]`` (IoU thresholds,
            recall thresholds, classes, area ranges ``all/small/medium/large``, max dets);
            ``-1`` where undefined.
        iou_thresholds: ``float64[T]``; recall_thresholds: ``float64[R]``.
    """

    class_names: list[str]
    stats: dict[str, float]
    per_class_AP: dict[str, float]
    per_class_AP50: dict[str, float]
    precision: np.ndarray
    iou_thresholds: np.ndarray
    recall_thresholds: np.ndarray

    def pr_curve(self, iou: float = 0.5) -> np.ndarray:
        """Interpolated precision ``float64[K, R]`` at IoU ``iou`` (area all, last max dets).

        Row ``k`` is class ``k``; columns follow ``recall_thresholds``; ``-1`` where undefined.
        """
        t = np.flatnonzero(np.isclose(self.iou_thresholds, iou))
        if t.size == 0:
            raise ValueError(f"iou: expected one of {self.iou_thresholds.round(2).tolist()}, got {iou}")
        return self.precision[t[0], :, :, 0, -1].T.copy()

    def to_dict(self) -> dict:
        """``stats`` plus ``per_class_AP`` and ``per_class_AP50`` (plain floats)."""
        return {**self.stats, "per_class_AP": dict(self.per_class_AP), "per_class_AP50": dict(self.per_class_AP50)}


def _mean_defined(values: np.ndarray) -> float:
    """pycocotools' summary rule: mean over entries > -1, ``-1`` when there are none."""
    defined = values[values > -1]
    return float(np.mean(defined)) if defined.size else -1.0


def _coco_modules(backend: str) -> tuple[type, type]:
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        return COCO, COCOeval
    from faster_coco_eval import COCO, COCOeval_faster

    return COCO, COCOeval_faster


class COCOEvaluator(StoredEvaluator):
    """COCO-style box evaluator: ``reset() / process(targets, outputs) / evaluate() -> dict``.

    Args:
        class_names: names of the classes; label ``k`` is ``class_names[k]`` (COCO id ``k + 1``).
        backend: ``"pycocotools"`` (the reference) or ``"faster-coco-eval"`` (C++ matching,
            same numbers).
        max_dets: the three per-image detection limits of the AR numbers, increasing; AP uses the
            last one.
        iou_type: only ``"bbox"`` (the pipeline has no masks).
        verbose: let the backend print its usual summary.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        backend: str = "pycocotools",
        max_dets: Sequence[int] = (1, 10, 100),
        iou_type: str = "bbox",
        verbose: bool = False,
    ) -> None:
        super().__init__(class_names)
        if backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
        if iou_type != "bbox":
            raise ValueError(f"iou_type: only 'bbox' is supported, got {iou_type!r}")
        max_dets = list(max_dets)
        if (
            len(max_dets) != 3
            or not all(isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in max_dets)
            or sorted(set(max_dets)) != max_dets
        ):
            raise ValueError(f"max_dets: expected three increasing positive ints, got {max_dets!r}")
        self.backend = backend
        self.max_dets = max_dets
        self.iou_type = iou_type
        self.verbose = verbose


    def compute(self) -> COCOResult:
        """Run COCOeval on everything processed and keep its precision array."""
        self._store.require_images(type(self).__name__)
        sink = contextlib.nullcontext() if self.verbose else contextlib.redirect_stdout(io.StringIO())
        with sink:
            coco_eval = self._run_cocoeval()
        return self._result(coco_eval)

    def _gt_dataset(self) -> dict:
        images, annotations = [], []
        for gt in self._store.ground_truth:
            image = {"id": gt.image_id}
            if gt.orig_size is not None:
                image["height"], image["width"] = gt.orig_size
            images.append(image)
            rows = zip(gt.boxes.tolist(), gt.labels.tolist(), gt.iscrowd.tolist(), gt.area.tolist())
            for box, label, crowd, area in rows:
                annotations.append({
                    "id": len(annotations) + 1,
                    "image_id": gt.image_id,
                    "category_id": label + 1,
                    "bbox": _xywh(box),
                    "area": area,
                    "iscrowd": int(crowd),
                })
        categories = [{"id": k + 1, "name": name} for k, name in enumerate(self.class_names)]
        return {"images": images, "annotations": annotations, "categories": categories}

    def _detections(self) -> list[dict]:
        return [
            {"image_id": det.image_id, "category_id": label + 1, "bbox": _xywh(box), "score": score}
            for det in self._store.detections
            for box, score, label in zip(det.boxes.tolist(), det.scores.tolist(), det.labels.tolist())
        ]

    def _run_cocoeval(self) -> object:
        coco_cls, eval_cls = _coco_modules(self.backend)
        extra = {} if self.backend == "pycocotools" else {"print_function": print if self.verbose else _quiet}
        gt = coco_cls(**extra)
        gt.dataset = self._gt_dataset()
        gt.createIndex()
        detections = self._detections()
        if detections:
            dt = gt.loadRes(detections)
        else:  # pycocotools' loadRes cannot take an empty list; build what it would have built
            dt = coco_cls(**extra)
            images, categories = list(gt.dataset["images"]), gt.dataset["categories"]
            dt.dataset = {"images": images, "categories": categories, "annotations": []}
            dt.createIndex()
        coco_eval = eval_cls(gt, dt, self.iou_type, **extra)
        coco_eval.params.maxDets = list(self.max_dets)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
        return coco_eval

    def _result(self, coco_eval: object) -> COCOResult:
        precision = np.asarray(coco_eval.eval["precision"], dtype=np.float64)
        stats = [float(s) for s in np.asarray(coco_eval.stats[:12], dtype=np.float64)]
        if self.max_dets[-1] != 100:
            # pycocotools' summarize() computes stats[0] with a hard-coded maxDets=100
            stats[0] = _mean_defined(precision[:, :, :, 0, -1])
        ar_keys = tuple(f"AR{m}" for m in self.max_dets)
        keys = _AP_KEYS + ar_keys + _AR_AREA_KEYS
        iou_thrs = np.asarray(coco_eval.params.iouThrs, dtype=np.float64)
        t50 = int(np.flatnonzero(np.isclose(iou_thrs, 0.5))[0])
        per_ap, per_ap50 = {}, {}
        for k, name in enumerate(self.class_names):
            per_ap[name] = _mean_defined(precision[:, :, k, 0, -1])
            per_ap50[name] = _mean_defined(precision[t50, :, k, 0, -1])
        return COCOResult(
            class_names=list(self.class_names),
            stats=dict(zip(keys, stats)),
            per_class_AP=per_ap,
            per_class_AP50=per_ap50,
            precision=precision,
            iou_thresholds=iou_thrs,
            recall_thresholds=np.asarray(coco_eval.params.recThrs, dtype=np.float64),
        )


def _xywh(box: list[float]) -> list[float]:
    """xyxy (absolute pixels) -> COCO ``[x, y, w, h]``."""
    x1, y1, x2, y2 = box
    return [x1, y1, x2 - x1, y2 - y1]


def _quiet(*args: object, **kwargs: object) -> None:
    """A print function that prints nothing (faster-coco-eval's ``print_function``)."""
