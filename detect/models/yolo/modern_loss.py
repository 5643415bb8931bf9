"""The training losses of the anchor-free YOLO head (:mod:`detect.models.yolo.modern`).

Targets come from the task-aligned assigner (:mod:`detect.models.yolo.assign`); then, with
``T`` the sum of every soft class target of the batch (at least 1):

* ``loss_cls``: binary cross-entropy of every point's class logits against its soft targets
  (negatives: all zeros), summed, divided by ``T``;
* ``loss_box``: CIoU loss (Zheng et al. 2020, torchvision's ``complete_box_iou_loss``) of each
  positive point's decoded box against its ground truth, weighted by the point's soft target,
  summed, divided by ``T``;
* ``loss_dfl``: Distribution Focal Loss (Li et al. 2020, Generalized Focal Loss) of each side's
  distribution over the ``reg_max`` bins: cross-entropy with the two bins around the target
  distance ``d`` (in strides), weighted ``(right - d)`` and ``(d - left)``; the mean of the four
  sides, weighted like the box loss.

Each is multiplied by its gain (``box_weight``, ``cls_weight``, ``dfl_weight``).  A batch
without ground truths has ``loss_box = loss_dfl = 0`` (exactly, still in the graph) and a
finite ``loss_cls`` (every point a negative).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import complete_box_iou_loss

from detect.models.yolo.assign import Assignment, TaskAlignedAssigner

__all__ = ["AnchorFreeLoss", "HeadOutput", "box_to_distances", "dfl_target_bins", "distribution_focal_loss"]

#: the largest target distance is kept this far below the last bin, so that its right bin exists
DFL_MARGIN = 0.01


class HeadOutput(NamedTuple):
    """The training-mode output of the anchor-free network (``A`` points over every level).

    Attributes:
        box_logits: ``float[N, A, 4, R]``, the logits of the (left, top, right, bottom)
            distance distributions over ``R = reg_max`` bins of one stride each.
        cls_logits: ``float[N, A, C]``, class logits.
        boxes: ``float[N, A, 4]``, the decoded boxes, xyxy canvas pixels (with gradient).
        points: ``float[A, 2]``, the points' ``(x, y)``: ``(cell + 0.5) * stride``.
        strides: ``float[A]``, each point's stride in pixels.
    """

    box_logits: Tensor
    cls_logits: Tensor
    boxes: Tensor
    points: Tensor
    strides: Tensor


def box_to_distances(points: Tensor, boxes: Tensor, strides: Tensor) -> Tensor:
    """``float[..., 4]``: the (left, top, right, bottom) distances, in strides, from each point
    (``[..., 2]`` pixels) to the sides of its box (``[..., 4]`` xyxy pixels); ``strides: [...]``.
    The inverse of the head's decode (:func:`detect.models.yolo.modern.distances_to_boxes`)."""
    distances = torch.cat((points - boxes[..., :2], boxes[..., 2:] - points), dim=-1)
    return distances / strides[..., None]


def dfl_target_bins(distances: Tensor, reg_max: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The two bins around each target distance (in strides, clamped to ``[0, reg_max - 1 - 0.01]``)
    and their weights: ``(left, right, w_left, w_right)``, ``left = floor(d)``, ``right = left + 1``,
    ``w_left = right - d``, ``w_right = d - left`` (so ``w_left + w_right = 1`` and
    ``left * w_left + right * w_right = d``)."""
    distances = distances.clamp(0, reg_max - 1 - DFL_MARGIN)
    left = distances.floor().long()
    right = left + 1
    return left, right, right.to(distances.dtype) - distances, distances - left.to(distances.dtype)


def distribution_focal_loss(logits: Tensor, distances: Tensor) -> Tensor:
    """``float[...]``: DFL of ``logits: [..., R]`` (one distribution a distance) against
    ``distances: [...]`` in bins (clamped as in :func:`dfl_target_bins`)."""
    left, right, w_left, w_right = dfl_target_bins(distances, logits.shape[-1])
    log_probs = logits.log_softmax(dim=-1)
    at_left = log_probs.gather(-1, left[..., None]).squeeze(-1)
    at_right = log_probs.gather(-1, right[..., None]).squeeze(-1)
    return -(at_left * w_left + at_right * w_right)


class AnchorFreeLoss:
    """``criterion(raw: HeadOutput, targets) -> {"loss_box", "loss_cls", "loss_dfl"}`` (see the
    module docstring); ``targets``: one ``{"boxes": float[M, 4] xyxy canvas pixels, "labels":
    int64[M] in [0, num_classes)}`` an image.

    Args:
        num_classes: classes of the head (``C``).
        topk, alpha, beta: the assigner's (:class:`TaskAlignedAssigner`).
        box_weight, cls_weight, dfl_weight: the gains of the three losses.
    """

    def __init__(self, num_classes: int, topk: int = 10, alpha: float = 1.0, beta: float = 6.0,
                 box_weight: float = 7.5, cls_weight: float = 0.5, dfl_weight: float = 1.5) -> None:
        self.num_classes = int(num_classes)
        self.assigner = TaskAlignedAssigner(topk, alpha, beta)
        self.box_weight, self.cls_weight, self.dfl_weight = float(box_weight), float(cls_weight), float(dfl_weight)

    def __call__(self, raw: HeadOutput, targets: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
        box_logits, cls_logits, boxes = raw.box_logits.float(), raw.cls_logits.float(), raw.boxes.float()
        points, strides = raw.points.float(), raw.strides.float()
        if len(targets) != cls_logits.shape[0]:
            raise ValueError(f"targets: expected one dict per image ({cls_logits.shape[0]}), got {len(targets)}")
        assigned = self._assign(cls_logits, boxes, points, targets)
        foreground = torch.stack([a.foreground for a in assigned])  # [N, A]
        soft = torch.stack([a.scores for a in assigned])  # [N, A, C]
        total = soft.sum().clamp(min=1.0)
        loss_cls = F.binary_cross_entropy_with_logits(cls_logits, soft, reduction="sum") / total
        if foreground.any():
            gt_boxes = torch.stack([a.boxes for a in assigned])[foreground]  # [P, 4]
            weight = soft.sum(dim=-1)[foreground]  # [P]
            ciou = complete_box_iou_loss(boxes[foreground], gt_boxes, reduction="none")
            loss_box = (ciou * weight).sum() / total
            point_index = foreground.nonzero()[:, 1]
            distances = box_to_distances(points[point_index], gt_boxes, strides[point_index])
            dfl = distribution_focal_loss(box_logits[foreground], distances).mean(dim=-1)
            loss_dfl = (dfl * weight).sum() / total
        else:  # exactly zero, in the graph (every parameter gets a gradient, zero)
            loss_box = loss_dfl = boxes.sum() * 0.0 + box_logits.sum() * 0.0
        return {"loss_box": self.box_weight * loss_box, "loss_cls": self.cls_weight * loss_cls,
                "loss_dfl": self.dfl_weight * loss_dfl}

    def _assign(self, cls_logits: Tensor, boxes: Tensor, points: Tensor,
                targets: Sequence[Mapping[str, Tensor]]) -> list[Assignment]:
        scores, boxes = cls_logits.detach().sigmoid(), boxes.detach()
        assigned = []
        for i, target in enumerate(targets):
            gt_boxes = target["boxes"].to(boxes.device, torch.float32)
            gt_labels = target["labels"].to(boxes.device, torch.int64)
            self._check_labels(i, gt_boxes, gt_labels)
            assigned.append(self.assigner(scores[i], boxes[i], points, gt_boxes, gt_labels))
        return assigned

    def _check_labels(self, i: int, gt_boxes: Tensor, gt_labels: Tensor) -> None:
        if gt_boxes.ndim != 2 or gt_boxes.shape[1] != 4 or gt_labels.shape != gt_boxes.shape[:1]:
            raise ValueError(f"targets[{i}]: expected boxes float[M, 4] and labels int64[M], got "
                             f"{list(gt_boxes.shape)} and {list(gt_labels.shape)}")
        bad = ((gt_labels < 0) | (gt_labels >= self.num_classes)).nonzero()
        if bad.numel():
            j = int(bad[0])
            raise ValueError(f"targets[{i}]: object {j} has label {int(gt_labels[j])}, expected 0-based labels "
                             f"in [0, {self.num_classes - 1}] (num_classes={self.num_classes})")
