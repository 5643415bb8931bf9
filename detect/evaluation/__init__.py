"""Detection evaluation: COCO mAP (pycocotools / faster-coco-eval), Pascal VOC AP, P/R/F1 at a
score threshold with a confusion matrix, and one report object that renders them all.

Every evaluator follows detectron2's ``DatasetEvaluator`` shape: ``reset()``,
``process(targets, outputs)``, ``evaluate() -> dict`` (and ``compute()`` for the full result
object). Inputs are described in :mod:`detect.evaluation.inputs`.
"""

from detect.evaluation.coco import COCOEvaluator, COCOResult
from detect.evaluation.matching import DetectionMetrics, ThresholdMetrics, box_iou
from detect.evaluation.report import EvaluationReport, evaluate_all
from detect.evaluation.voc import VOCClassResult, VOCEvaluator, VOCResult, voc07_ap, voc12_ap

__all__ = [
    "COCOEvaluator",
    "COCOResult",
    "DetectionMetrics",
    "EvaluationReport",
    "ThresholdMetrics",
    "VOCClassResult",
    "VOCEvaluator",
    "VOCResult",
    "box_iou",
    "evaluate_all",
    "voc07_ap",
    "voc12_ap",
]
