"""The one way to evaluate a detector: run it over a split with the predict loop and score it.

``detect eval --model/--checkpoint``, the trainer's validation and final report, and ``detect
bench --dataset`` all call :func:`evaluate_detector`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from detect.data.dataset import DetectionDataset
from detect.evaluation.report import EvaluationReport, evaluate_all
from detect.inference.loop import data_loader, predict_batches
from detect.structures import DatasetSplit


@dataclass
class ModelEvaluation:
    """A detector run over one split and scored.

    Attributes:
        report: COCO, VOC and score-threshold metrics (:class:`~detect.evaluation.report.EvaluationReport`).
        targets, outputs: per image, in split order (outputs on the CPU, xyxy pixels, 0-based labels).
        seconds_per_image: model time an image (warm-up batch excluded, device synchronised).
    """

    report: EvaluationReport
    targets: list[dict[str, Any]]
    outputs: list[dict[str, Tensor]]
    seconds_per_image: float

    def metrics(self) -> dict[str, float]:
        """The report's headline numbers (the 12 COCO stats ``AP``, ``AP50``..., VOC mAP, micro
        P/R/F1), ``seconds_per_image`` and ``images``."""
        return {**self.report.summary(), "seconds_per_image": self.seconds_per_image,
                "images": float(len(self.targets))}


def evaluate_detector(model: nn.Module, data: DatasetSplit | Dataset | DataLoader, class_names: Sequence[str] | None = None,
                      *, device: torch.device | str = "cpu", batch_size: int = 8, amp: torch.dtype | None = None,
                      progress: bool = True, score_threshold: float = 0.25, iou: float = 0.5,
                      backend: str = "pycocotools") -> ModelEvaluation:
    """Run ``model`` over ``data`` (a split, a dataset of ``(image, target)`` or a loader of
    ``(images, targets)``) and score it.

    The model's training mode and the process-wide RNG state are restored afterwards, so an
    evaluation never changes a training run's random stream.

    Args:
        class_names: label ``k`` is ``class_names[k]`` (default: the split's).
        device, batch_size, amp: where and how the model runs (``amp``: autocast dtype, ``None`` float32).
        score_threshold, iou: operating point of P/R/F1 and the confusion matrix (not of mAP).
        backend: COCO backend, ``pycocotools`` or ``faster-coco-eval``.
    """
    if class_names is None:
        if not isinstance(data, DatasetSplit):
            raise TypeError("evaluate_detector: class_names is required unless data is a DatasetSplit")
        class_names = data.class_names
    loader = data_loader(DetectionDataset(data) if isinstance(data, DatasetSplit) else data, batch_size)
    device = torch.device(device)
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    was_training = model.training
    with torch.random.fork_rng(devices=cuda):
        targets, outputs, timing = predict_batches(model, loader, device, amp, progress)
    model.train(was_training)
    report = evaluate_all(class_names, targets, outputs, score_threshold=score_threshold, iou=iou, backend=backend)
    return ModelEvaluation(report, targets, outputs, timing["seconds_per_image"])
