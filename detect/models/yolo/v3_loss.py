"""YOLOv3's training targets and losses (Redmon & Farhadi 2018): one anchor a ground truth, ignore, BCE.

Assignment (:func:`assign_targets`): each ground-truth box goes to the single anchor, among all
nine, whose shape best matches its own (:func:`detect.models.yolo.kmeans.shape_iou`, boxes
aligned at a corner), so to that anchor's level, and to the cell of that level containing the
box's centre.  That prediction's objectness target is 1.  Two boxes landing on the same
prediction both count (each pulls its box and class there).

Ignore (:func:`ignore_mask`): a prediction that is nobody's but whose decoded box overlaps some
ground truth by IoU > ``ignore_threshold`` (0.5) is no negative either: its objectness gets no
loss.  Every other prediction is a negative, objectness target 0.

Losses, summed over the predictions and divided by the batch size (the number of images):

* ``loss_box``: ``box_loss="sse"`` (the paper's): sum of squared errors of ``sigmoid(t_x),
  sigmoid(t_y)`` against the centre's offset in its cell (in ``[0, 1)``, darknet's form) and of
  ``t_w, t_h`` against ``log(w / anchor_w), log(h / anchor_h)``, each box weighted by
  ``2 - w h / S^2`` (``S`` the canvas side: small boxes weigh up to twice as much);
  ``box_loss="giou"``: ``1 - GIoU`` of the decoded box with the ground truth (Rezatofighi et al.
  2019), unweighted;
* ``loss_obj``: binary cross-entropy of the objectness logits, positives and negatives;
* ``loss_cls``: binary cross-entropy of the ``C`` class logits at the positives, one-hot targets
  (independent logistic classifiers, no softmax).

Shapes: a level's raw output is ``Tensor[N, 3, H, W, 5 + C]`` (``t_x, t_y, t_w, t_h``,
objectness, ``C`` class logits, per anchor and cell), its decoded boxes ``Tensor[N, 3, H, W, 4]``
``cx, cy, w, h`` in canvas pixels (:class:`LevelOutput`).  Targets: ``boxes`` xyxy canvas pixels,
``labels`` 0-based int64.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import generalized_box_iou_loss

from detect.box_ops import box_convert, box_iou
from detect.models.yolo.kmeans import shape_iou

__all__ = ["Assignment", "BOX_LOSSES", "LevelOutput", "YoloV3Loss", "assign_targets", "encode_boxes",
           "ignore_mask"]

BOX_LOSSES = ("sse", "giou")
OFFSET_EPS = 1e-6  # centre offsets kept inside (0, 1) so that logit(offset) stays finite


class LevelOutput(NamedTuple):
    """One level of the training-mode network output.

    ``raw``: ``Tensor[N, A, H, W, 5 + C]`` (A anchors); ``boxes``: ``Tensor[N, A, H, W, 4]`` decoded
    ``cx, cy, w, h`` canvas pixels; ``stride``: pixels a cell.
    """

    raw: Tensor
    boxes: Tensor
    stride: int


@dataclass(frozen=True)
class Assignment:
    """Which prediction answers for each ground truth (one row a box, ``Tensor[M]`` int64 each).

    ``image``: index in the batch; ``box``: index of the box in its image's target; ``anchor``:
    index among all anchors (``0 .. L*A-1``, sorted by area); ``level`` = ``anchor // A``;
    ``slot`` = ``anchor % A`` (the anchor within its level); ``cell_x``, ``cell_y``: the cell of
    that level holding the box's centre.
    """

    image: Tensor
    box: Tensor
    anchor: Tensor
    level: Tensor
    slot: Tensor
    cell_x: Tensor
    cell_y: Tensor

    def __len__(self) -> int:
        return len(self.image)


def assign_targets(targets: Sequence[Mapping[str, Tensor]], anchors: Tensor, strides: Sequence[int],
                   grid_sizes: Sequence[tuple[int, int]]) -> Assignment:
    """YOLOv3's assignment (see the module docstring).

    Args:
        targets: per image ``{"boxes": Tensor[M_i, 4] xyxy canvas pixels, ...}``.
        anchors: ``Tensor[L * A, 2]`` ``(w, h)`` pixels, ``A`` per level from the finest level.
        strides: ``L`` strides (pixels a cell), finest first.
        grid_sizes: ``L`` ``(H, W)`` map sizes.

    Boxes of zero width or height (clipped away by an augmentation) are not assigned.
    """
    per_level = len(anchors) // len(strides)
    assert per_level * len(strides) == len(anchors), "anchors must split evenly over the levels"
    device = anchors.device
    rows = [(torch.full((len(t["boxes"]),), i, dtype=torch.int64, device=device),
             torch.arange(len(t["boxes"]), device=device), t["boxes"].to(device=device, dtype=torch.float32))
            for i, t in enumerate(targets)]
    image = torch.cat([r[0] for r in rows]) if rows else torch.zeros(0, dtype=torch.int64, device=device)
    box = torch.cat([r[1] for r in rows]) if rows else torch.zeros(0, dtype=torch.int64, device=device)
    xyxy = torch.cat([r[2] for r in rows]) if rows else torch.zeros(0, 4, device=device)
    cxcywh = box_convert(xyxy, "xyxy", "cxcywh")
    valid = (cxcywh[:, 2] > 0) & (cxcywh[:, 3] > 0)
    image, box, cxcywh = image[valid], box[valid], cxcywh[valid]
    anchor = shape_iou(cxcywh[:, 2:].double(), anchors.double()).argmax(dim=1) if len(cxcywh) else box.clone()
    level = anchor // per_level
    stride = torch.tensor(list(strides), dtype=torch.float32, device=device)[level]
    sizes = torch.tensor(list(grid_sizes), dtype=torch.int64, device=device)[level]  # (H, W)
    cell_x = torch.minimum((cxcywh[:, 0] / stride).floor().long().clamp(min=0), sizes[:, 1] - 1)
    cell_y = torch.minimum((cxcywh[:, 1] / stride).floor().long().clamp(min=0), sizes[:, 0] - 1)
    return Assignment(image, box, anchor, level, anchor % per_level, cell_x, cell_y)


def ignore_mask(pred_boxes: Tensor, gt_boxes: Tensor, threshold: float) -> Tensor:
    """``Tensor[P]`` bool: the predictions (``pred_boxes: Tensor[P, 4]`` xyxy) whose IoU with some
    ground truth (``gt_boxes: Tensor[M, 4]`` xyxy) exceeds ``threshold``; all False without boxes."""
    if len(gt_boxes) == 0:
        return torch.zeros(len(pred_boxes), dtype=torch.bool, device=pred_boxes.device)
    return box_iou(pred_boxes, gt_boxes).max(dim=1).values > threshold


def encode_boxes(boxes: Tensor, cells: Tensor, anchors: Tensor, stride: float) -> Tensor:
    """Regression targets of boxes ``Tensor[..., 4]`` ``cx, cy, w, h`` canvas pixels, given their
    cells ``Tensor[..., 2]`` ``(x, y)``, anchors ``Tensor[..., 2]`` ``(w, h)`` and strides (a number,
    or ``Tensor[..., 1]``).

    Returns ``Tensor[..., 4]``: the targets of ``sigmoid(t_x), sigmoid(t_y)`` (the centre's offset
    in its cell, kept inside ``(0, 1)``) and of ``t_w, t_h`` (``log(w / anchor_w)``...); the inverse
    of the network's decoding ``((sigmoid(t_xy) + cell) * stride, anchor * exp(t_wh))``.
    """
    offset = (boxes[..., :2] / stride - cells).clamp(OFFSET_EPS, 1 - OFFSET_EPS)
    return torch.cat((offset, torch.log(boxes[..., 2:] / anchors)), dim=-1)


class YoloV3Loss:
    """The criterion of :class:`~detect.models.yolo.base.YoloDetector` for YOLOv3 heads.

    ``loss(outputs: Sequence[LevelOutput], targets) -> {"loss_box", "loss_obj", "loss_cls"}``
    (see the module docstring).  ``anchors``: ``Tensor[L * A, 2]`` ``(w, h)`` pixels sorted by
    area, ``A`` per level from the finest; ``strides``: the ``L`` levels' strides.
    """

    def __init__(self, anchors: Tensor, strides: Sequence[int], num_classes: int, ignore_threshold: float = 0.5,
                 box_loss: str = "sse") -> None:
        if box_loss not in BOX_LOSSES:
            raise ValueError(f"yolov3: box_loss must be one of {BOX_LOSSES}, got {box_loss!r}")
        if not 0.0 <= ignore_threshold <= 1.0:
            raise ValueError(f"yolov3: ignore_threshold must be an IoU in [0, 1], got {ignore_threshold!r}")
        self.anchors = torch.as_tensor(anchors, dtype=torch.float32).reshape(-1, 2)
        self.strides = tuple(int(s) for s in strides)
        self.per_level = len(self.anchors) // len(self.strides)
        self.num_classes = int(num_classes)
        self.ignore_threshold = float(ignore_threshold)
        self.box_loss = box_loss

    def __call__(self, outputs: Sequence[LevelOutput], targets: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
        raws = [o.raw.float() for o in outputs]
        boxes = [o.boxes.float() for o in outputs]
        batch, device = raws[0].shape[0], raws[0].device
        anchors = self.anchors.to(device)
        assigned = assign_targets(targets, anchors, self.strides, [tuple(r.shape[2:4]) for r in raws])
        gt = self._assigned_targets(targets, assigned, device)
        negatives = self._negatives(boxes, targets, assigned)
        pred_raw = self._gather(raws, assigned)  # [M, 5 + C]
        pred_box = self._gather(boxes, assigned)  # [M, 4]
        loss_obj = sum(self._objectness(r[..., 4], n) for r, n in zip(raws, negatives))
        loss_obj = loss_obj + F.binary_cross_entropy_with_logits(
            pred_raw[:, 4], torch.ones_like(pred_raw[:, 4]), reduction="sum")
        onehot = F.one_hot(gt["labels"], self.num_classes).to(pred_raw.dtype)
        loss_cls = F.binary_cross_entropy_with_logits(pred_raw[:, 5:], onehot, reduction="sum")
        loss_box = self._box_loss(pred_raw, pred_box, gt, assigned, anchors, raws)
        return {"loss_box": loss_box / batch, "loss_obj": loss_obj / batch, "loss_cls": loss_cls / batch}

    # -- parts
    @staticmethod
    def _assigned_targets(targets: Sequence[Mapping[str, Tensor]], assigned: Assignment,
                          device: torch.device) -> dict[str, Tensor]:
        """The ``boxes`` (``[M, 4]`` cxcywh) and ``labels`` (``[M]``) of the assigned ground truths."""
        xyxy = torch.cat([t["boxes"].to(device=device, dtype=torch.float32) for t in targets]) \
            if targets else torch.zeros(0, 4, device=device)
        labels = torch.cat([t["labels"].to(device=device, dtype=torch.int64) for t in targets]) \
            if targets else torch.zeros(0, dtype=torch.int64, device=device)
        offsets = torch.tensor([0] + [len(t["boxes"]) for t in targets], device=device).cumsum(0)[:-1] \
            if targets else torch.zeros(0, dtype=torch.int64, device=device)
        index = offsets[assigned.image] + assigned.box if len(assigned) else assigned.box
        return {"boxes": box_convert(xyxy[index], "xyxy", "cxcywh"), "labels": labels[index]}

    def _negatives(self, boxes: Sequence[Tensor], targets: Sequence[Mapping[str, Tensor]],
                   assigned: Assignment) -> list[Tensor]:
        """Per level ``Tensor[N, A, H, W]`` bool: no one's prediction and not ignored."""
        negatives = []
        with torch.no_grad():
            flat = torch.cat([b.reshape(b.shape[0], -1, 4) for b in boxes], dim=1)  # [N, P, 4]
            ignored = torch.stack([
                ignore_mask(box_convert(flat[i], "cxcywh", "xyxy"),
                            t["boxes"].to(device=flat.device, dtype=flat.dtype), self.ignore_threshold)
                for i, t in enumerate(targets)])
            start = 0
            for level, b in enumerate(boxes):
                count = b[..., 0].numel() // b.shape[0]
                negative = ~ignored[:, start:start + count].reshape(b.shape[:-1])
                start += count
                a = assigned
                here = a.level == level
                negative[a.image[here], a.slot[here], a.cell_y[here], a.cell_x[here]] = False
                negatives.append(negative)
        return negatives

    @staticmethod
    def _objectness(logits: Tensor, negative: Tensor) -> Tensor:
        loss = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
        return (loss * negative).sum()

    @staticmethod
    def _gather(maps: Sequence[Tensor], assigned: Assignment) -> Tensor:
        """The assigned predictions of ``maps`` (each ``[N, A, H, W, D]``), one row a ground truth: ``[M, D]``."""
        rows = maps[0].new_zeros(len(assigned), maps[0].shape[-1])
        for level, values in enumerate(maps):
            here = (assigned.level == level).nonzero().squeeze(1)
            picked = values[assigned.image[here], assigned.slot[here], assigned.cell_y[here], assigned.cell_x[here]]
            rows = rows.index_put((here,), picked)
        return rows

    def _box_loss(self, pred_raw: Tensor, pred_box: Tensor, gt: Mapping[str, Tensor], assigned: Assignment,
                  anchors: Tensor, raws: Sequence[Tensor]) -> Tensor:
        if self.box_loss == "giou":
            return generalized_box_iou_loss(box_convert(pred_box, "cxcywh", "xyxy"),
                                            box_convert(gt["boxes"], "cxcywh", "xyxy"), reduction="sum")
        stride = torch.tensor(self.strides, dtype=torch.float32, device=pred_raw.device)[assigned.level]
        cells = torch.stack((assigned.cell_x, assigned.cell_y), dim=1).to(pred_raw.dtype)
        target = encode_boxes(gt["boxes"], cells, anchors[assigned.anchor], stride[:, None])
        side = torch.tensor([r.shape[3] * s for r, s in zip(raws, self.strides)], device=pred_raw.device,
                            dtype=pred_raw.dtype)[assigned.level]  # the canvas side in pixels
        weight = 2.0 - gt["boxes"][:, 2] * gt["boxes"][:, 3] / side ** 2
        error = (pred_raw[:, :2].sigmoid() - target[:, :2]).square().sum(1) \
            + (pred_raw[:, 2:4] - target[:, 2:4]).square().sum(1)
        return (weight * error).sum()
