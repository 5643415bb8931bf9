"""Detection evaluation: COCO mAP (pycocotools / faster-coco-eval), Pascal VOC AP, P/R/F1 at a
score threshold with a confusion matrix, and one report object that renders them all.

Every evaluator follows detectron2's ``DatasetEvaluator`` shape: ``reset()``,
``process(targets, outputs)``, ``evaluate() -> dict`` (and ``compute()`` for the full result
object). Inputs are described in :mod:`detect.evaluation.inputs`.

Names are imported lazily, so ``import detect.cli.evaluate`` (the CLI parser) stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "COCOEvaluator": "coco",
    "COCOResult": "coco",
    "DetectionMetrics": "matching",
    "ThresholdMetrics": "matching",
    "EvaluationReport": "report",
    "evaluate_all": "report",
    "VOCClassResult": "voc",
    "VOCEvaluator": "voc",
    "VOCResult": "voc",
    "voc07_ap": "voc",
    "voc12_ap": "voc",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'detect.evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(f"detect.evaluation.{_LAZY[name]}"), name)
