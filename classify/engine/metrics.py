"""Classification metrics accumulated over batches: loss, top-1/top-5, per-class accuracy and
the confusion matrix.

    meter = ClassificationMeter(num_classes=10)
    for logits, target in batches:       # logits: float [N, K], target: int64 [N]
        meter.update(logits, target, loss_sum)
    result = meter.result()              # EvalResult
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["ClassificationMeter", "EvalResult"]


@dataclass(frozen=True)
class EvalResult:
    """Scores of one pass over a dataset.

    ``confusion[t, p]`` counts images of true class ``t`` predicted as ``p`` (int64 ``[K, K]``);
    ``per_class`` is the recall of each class (NaN for a class without images); ``top5`` is
    top-``min(5, K)`` accuracy; accuracies are fractions in [0, 1]; ``loss`` is the mean
    cross-entropy per image.
    """

    loss: float
    top1: float
    top5: float
    per_class: tuple[float, ...]
    confusion: Tensor
    images: int

    def as_dict(self) -> dict[str, Any]:
        """Plain numbers (JSON / checkpoint metrics)."""
        return {"loss": self.loss, "top1": self.top1, "top5": self.top5, "images": self.images,
                "per_class": list(self.per_class)}


class ClassificationMeter:
    """Running sums of correct predictions, loss and the confusion matrix (on the CPU)."""

    def __init__(self, num_classes: int) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
        self.top5_correct = 0
        self.loss_sum = 0.0
        self.count = 0

    def update(self, logits: Tensor, target: Tensor, loss_sum: float = 0.0) -> None:
        """Add a batch: ``logits: [N, K]``, ``target: int64 [N]``, ``loss_sum`` over its N images."""
        if logits.dim() != 2 or logits.shape[1] != self.num_classes or len(target) != len(logits):
            raise ValueError(f"expected logits [N, {self.num_classes}] and N targets, got logits "
                             f"{list(logits.shape)} and {len(target)} targets")
        logits, target = logits.detach().float().cpu(), target.detach().cpu()
        k = min(5, self.num_classes)
        top = logits.topk(k, dim=1).indices
        pred = top[:, 0]
        index = target * self.num_classes + pred
        self.confusion += torch.bincount(index, minlength=self.num_classes ** 2).view_as(self.confusion)
        self.top5_correct += int((top == target[:, None]).any(dim=1).sum())
        self.loss_sum += float(loss_sum)
        self.count += len(target)

    def result(self) -> EvalResult:
        n = max(self.count, 1)
        totals = self.confusion.sum(dim=1).double()
        per_class = (self.confusion.diag().double() / totals).tolist()  # NaN where totals == 0
        top1 = int(self.confusion.diag().sum()) / n
        return EvalResult(loss=self.loss_sum / n, top1=top1, top5=self.top5_correct / n,
                          per_class=tuple(per_class), confusion=self.confusion.clone(),
                          images=self.count)
