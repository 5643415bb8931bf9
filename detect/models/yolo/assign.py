"""Task-aligned assignment (Feng et al. 2021, TOOD) of ground-truth boxes to the anchor points of an image.

For every ground truth ``g`` and point ``a`` of the image:

1. candidates: the points whose centre lies strictly inside ``g``;
2. alignment metric ``t = s ** alpha * u ** beta``: ``s`` the predicted score of ``g``'s class at
   ``a``, ``u`` the IoU of ``a``'s predicted box with ``g`` (TOOD: ``alpha = 1``, ``beta = 6``);
3. the ``topk`` candidates of ``g`` by ``t`` are its positives;
4. a point that is a positive of several ground truths goes to the one its predicted box
   overlaps most (highest IoU);
5. soft class targets: ``t / max t of g * max u of g`` (maxima over ``g``'s positives) at ``g``'s
   class, zero elsewhere; a point that no ground truth claims is a negative (all targets zero).

Everything is computed without gradient, from the (detached) predictions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from detect.box_ops import box_iou

__all__ = ["Assignment", "TaskAlignedAssigner", "points_in_boxes"]

INSIDE_EPS = 1e-9


@dataclass(frozen=True)
class Assignment:
    """The targets of the ``A`` points of one image.

    Attributes:
        foreground: ``bool[A]``, points assigned a ground truth.
        gt_index: ``int64[A]``, the assigned ground truth's index (``-1`` for negatives).
        labels: ``int64[A]``, its class (``-1`` for negatives).
        boxes: ``float[A, 4]``, its box, xyxy pixels (zeros for negatives).
        scores: ``float[A, C]``, the soft classification targets (see the module docstring).
    """

    foreground: Tensor
    gt_index: Tensor
    labels: Tensor
    boxes: Tensor
    scores: Tensor


def points_in_boxes(points: Tensor, boxes: Tensor, eps: float = INSIDE_EPS) -> Tensor:
    """``bool[M, A]``: point ``a`` (``points: [A, 2]`` x, y) lies strictly inside box ``m``
    (``boxes: [M, 4]`` xyxy, same units)."""
    top_left = points[None] - boxes[:, None, :2]
    bottom_right = boxes[:, None, 2:] - points[None]
    return torch.cat((top_left, bottom_right), dim=-1).amin(dim=-1) > eps


class TaskAlignedAssigner:
    """``assigner(scores, boxes, points, gt_boxes, gt_labels) -> Assignment`` for one image.

    Args:
        topk: positives per ground truth at most (TOOD: 13; YOLOv8's choice: 10).
        alpha: exponent of the class score in the alignment metric.
        beta: exponent of the IoU in the alignment metric.
    """

    def __init__(self, topk: int = 10, alpha: float = 1.0, beta: float = 6.0) -> None:
        assert topk >= 1, "topk counts positives per ground truth"
        self.topk, self.alpha, self.beta = int(topk), float(alpha), float(beta)

    @torch.no_grad()
    def __call__(self, scores: Tensor, boxes: Tensor, points: Tensor, gt_boxes: Tensor,
                 gt_labels: Tensor) -> Assignment:
        """Assign one image's ground truths to its points.

        Args:
            scores: ``float[A, C]`` predicted class probabilities (after the sigmoid).
            boxes: ``float[A, 4]`` predicted boxes, xyxy pixels.
            points: ``float[A, 2]`` the points' ``(x, y)`` in pixels.
            gt_boxes: ``float[M, 4]`` ground-truth boxes, xyxy pixels (``M`` may be 0).
            gt_labels: ``int64[M]`` their classes, 0-based.
        """
        scores, boxes, points, gt_boxes = scores.float(), boxes.float(), points.float(), gt_boxes.float()
        num_points, num_classes = scores.shape
        if gt_boxes.shape[0] == 0:
            return _negatives(num_points, num_classes, scores.device)
        inside = points_in_boxes(points, gt_boxes)  # [M, A]
        iou = box_iou(gt_boxes, boxes).clamp(min=0) * inside
        metric = scores[:, gt_labels].T.pow(self.alpha) * iou.pow(self.beta) * inside
        positive = self._top_candidates(metric, inside)
        claim_iou = torch.where(positive, iou, torch.full_like(iou, -1.0))
        gt_index = claim_iou.argmax(dim=0)  # the claimant with the highest IoU
        foreground = positive.any(dim=0)
        owner = torch.arange(gt_boxes.shape[0], device=gt_boxes.device)[:, None] == gt_index[None]
        positive = positive & owner  # [M, A], at most one ground truth a point
        return self._targets(metric, iou, positive, foreground, gt_index, gt_boxes, gt_labels, num_classes)

    def _top_candidates(self, metric: Tensor, inside: Tensor) -> Tensor:
        """``bool[M, A]``: the ``topk`` points of each ground truth by ``metric``, among ``inside``."""
        k = min(self.topk, metric.shape[1])
        ranked = torch.where(inside, metric, torch.full_like(metric, -1.0))  # candidates first, ties or not
        top = ranked.topk(k, dim=1).indices
        chosen = torch.zeros_like(inside).scatter_(1, top, True)
        return chosen & inside

    def _targets(self, metric: Tensor, iou: Tensor, positive: Tensor, foreground: Tensor, gt_index: Tensor,
                 gt_boxes: Tensor, gt_labels: Tensor, num_classes: int) -> Assignment:
        metric = metric * positive
        best_metric = metric.amax(dim=1, keepdim=True)  # [M, 1]
        best_iou = (iou * positive).amax(dim=1, keepdim=True)
        # t / max t exactly: an eps added to max t (say 1e-9) would shrink every target where
        # the metrics are that small (s ~ 0.01 and u ~ 0.1 give t ~ 1e-8 at the start of training)
        scale = best_iou / best_metric.clamp(min=torch.finfo(metric.dtype).tiny)
        soft = (metric * scale).amax(dim=0)  # [A]; one positive a point
        labels = torch.where(foreground, gt_labels[gt_index], torch.full_like(gt_index, -1))
        scores = torch.zeros(gt_index.shape[0], num_classes, device=gt_boxes.device)
        rows = foreground.nonzero().squeeze(1)
        scores[rows, labels[rows]] = soft[rows]
        boxes = torch.where(foreground[:, None], gt_boxes[gt_index], torch.zeros_like(gt_boxes[gt_index]))
        gt_index = torch.where(foreground, gt_index, torch.full_like(gt_index, -1))
        return Assignment(foreground, gt_index, labels, boxes, scores)


def _negatives(num_points: int, num_classes: int, device: torch.device) -> Assignment:
    """Every point a negative (an image without ground truths)."""
    none = torch.full((num_points,), -1, dtype=torch.int64, device=device)
    return Assignment(torch.zeros(num_points, dtype=torch.bool, device=device), none, none.clone(),
                      torch.zeros(num_points, 4, device=device), torch.zeros(num_points, num_classes, device=device))
