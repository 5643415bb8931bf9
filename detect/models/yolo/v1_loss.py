"""YOLOv1's training targets and loss (Redmon et al., "You Only Look Once", CVPR 2016, section 2.2).

Box parametrisation (the paper's): the canvas (``imgsz x imgsz`` pixels) is cut into ``S x S``
cells of ``imgsz / S`` pixels; an object belongs to the cell holding its centre.  A box is
``(x, y, sqrt(w), sqrt(h))``: ``x, y`` the centre's offset inside its cell in ``[0, 1)`` (cell
widths), ``w, h`` the box's size as a fraction of the canvas side, predicted as square roots (so
that an error of a few pixels costs a small box more than a large one).  :func:`encode_boxes` /
:func:`decode_boxes` convert xyxy canvas pixels to that and back; cells are numbered row-major
(``row * S + col``, the order of ``map.flatten(2)`` and of :func:`~detect.models.yolo.layers.cell_grid`).

Targets (:func:`assign_targets`): one object a cell, as in the paper, whose output holds one set of
class probabilities a cell.  When several object centres fall into one cell, the **largest** box
(by area; the first one listed on a tie) is kept and the others are dropped from the loss: their
cell sees them as "no object".  The paper names this its main limit ("each grid cell only predicts
two boxes and can only have one class ... our model struggles with small objects that appear in
groups"); on the digit scenes it costs recall on small, clustered digits (``CellTargets.dropped``
counts them).  Choosing the largest makes the choice independent of the annotation order.

Loss (:class:`YoloV1Loss`, the paper's equation 3, sum-squared error throughout):

* the *responsible* predictor of an object's cell is the one of its ``B`` boxes whose decoded
  prediction has the highest IoU with the object (when every IoU is 0, the one whose
  ``(x, y, sqrt w, sqrt h)`` is nearest the target's, as darknet does);
* ``loss_box = lambda_coord * sum((x - x^)^2 + (y - y^)^2 + (sqrt w - sqrt w^)^2 + (sqrt h - sqrt h^)^2)``
  over responsible predictors (``lambda_coord = 5``);
* ``loss_obj = sum((C - IoU)^2)`` over responsible predictors: the confidence target is the IoU of
  the predicted box with the object (detached), the paper's ``Pr(Object) * IoU``;
* ``loss_noobj = lambda_noobj * sum(C^2)`` over every other predictor, the non-responsible ones of an
  object's cell included (``lambda_noobj = 0.5``);
* ``loss_cls = sum_c (p(c) - p^(c))^2`` over cells holding an object (one-hot ``p^``); ``p`` are the
  network's linear class outputs, probabilities only through this loss (the paper's choice, not a
  softmax cross-entropy; see :mod:`detect.models.yolo.v1`).

Each sum runs over the batch and is divided by the batch size (darknet's ``cost`` is the batch
sum).  Without objects ``loss_box``, ``loss_obj`` and ``loss_cls`` are exactly 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detect.box_ops import box_area, box_convert
from detect.models.yolo.layers import cell_grid

__all__ = ["CellTargets", "YoloV1Loss", "YoloV1Output", "assign_targets", "decode_boxes", "encode_boxes",
           "paired_iou", "responsible_predictor"]

LAMBDA_COORD = 5.0
LAMBDA_NOOBJ = 0.5


class YoloV1Output(NamedTuple):
    """The network's training-mode output (``P = S * S`` cells, ``B`` boxes a cell), the paper's
    linear outputs, so unbounded (trained towards the ranges given).

    ``boxes``: ``Tensor[N, P, B, 4]`` ``(x, y, sqrt w, sqrt h)``, targets in ``[0, 1]`` (see the module
    docstring); ``confidence``: ``Tensor[N, P, B]``, targets in ``[0, 1]``; ``class_probs``:
    ``Tensor[N, P, C]``, one-hot targets.
    """

    boxes: Tensor
    confidence: Tensor
    class_probs: Tensor


# -- the box parametrisation ---------------------------------------------------------------------
def encode_boxes(boxes: Tensor, grid: int, imgsz: int) -> tuple[Tensor, Tensor]:
    """``boxes``: ``Tensor[M, 4]`` xyxy canvas pixels -> (cell ``int64[M]`` row-major, ``Tensor[M, 4]``
    ``(x, y, sqrt w, sqrt h)``).  Centres outside the canvas go to the nearest border cell
    (their offsets clamped to ``[0, 1]``); sizes are clamped to ``[0, 1]`` of the canvas side."""
    cell_size = imgsz / grid
    cx, cy, w, h = box_convert(boxes.float(), "xyxy", "cxcywh").unbind(-1)
    col = (cx / cell_size).floor().clamp(0, grid - 1)
    row = (cy / cell_size).floor().clamp(0, grid - 1)
    x = (cx / cell_size - col).clamp(0, 1)
    y = (cy / cell_size - row).clamp(0, 1)
    size = torch.stack((w, h), -1).div(imgsz).clamp(0, 1).sqrt()
    cells = (row * grid + col).long()
    return cells, torch.cat((torch.stack((x, y), -1), size), -1)


def decode_boxes(params: Tensor, grid: int, imgsz: int) -> Tensor:
    """``params``: ``Tensor[..., P, B, 4]`` ``(x, y, sqrt w, sqrt h)`` of every cell's ``B`` boxes
    (``P = grid * grid`` cells, row-major) -> ``Tensor[..., P, B, 4]`` cxcywh canvas pixels."""
    cell_size = imgsz / grid
    offsets = cell_grid(grid, grid, device=params.device, dtype=params.dtype)[:, None, :]  # [P, 1, 2] (col, row)
    centres = (offsets + params[..., :2]) * cell_size
    sizes = params[..., 2:].square() * imgsz
    return torch.cat((centres, sizes), -1)


def paired_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU of ``boxes1[..., i]`` with ``boxes2[..., i]`` (xyxy, broadcast) -> ``Tensor[...]``; 0 where
    the union is empty."""
    top_left = torch.max(boxes1[..., :2], boxes2[..., :2])
    bottom_right = torch.min(boxes1[..., 2:], boxes2[..., 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    union = box_area(boxes1.reshape(-1, 4)).reshape(boxes1.shape[:-1]) \
        + box_area(boxes2.reshape(-1, 4)).reshape(boxes2.shape[:-1]) - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), torch.zeros_like(inter))


# -- targets -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CellTargets:
    """What every cell of a batch should predict (``P = S * S`` cells, row-major).

    ``has_object``: ``bool[N, P]``; ``boxes``: ``Tensor[N, P, 4]`` ``(x, y, sqrt w, sqrt h)`` of the
    cell's object (0 elsewhere); ``boxes_xyxy``: ``Tensor[N, P, 4]`` the same box in canvas pixels;
    ``labels``: ``int64[N, P]`` (0 where no object); ``dropped``: objects left out because a larger
    one had its centre in the same cell.
    """

    has_object: Tensor
    boxes: Tensor
    boxes_xyxy: Tensor
    labels: Tensor
    dropped: int


def assign_targets(targets: Sequence[Mapping[str, Tensor]], grid: int, imgsz: int,
                   device: torch.device | None = None) -> CellTargets:
    """The cell targets of ``targets`` (``{"boxes": Tensor[M, 4] xyxy canvas pixels, "labels":
    int64[M]}`` an image): each object goes to the cell of its centre, the largest one a cell
    (see the module docstring)."""
    cells = grid * grid
    n = len(targets)
    has_object = torch.zeros(n, cells, dtype=torch.bool, device=device)
    boxes = torch.zeros(n, cells, 4, device=device)
    boxes_xyxy = torch.zeros(n, cells, 4, device=device)
    labels = torch.zeros(n, cells, dtype=torch.int64, device=device)
    dropped = 0
    for i, target in enumerate(targets):
        xyxy = target["boxes"].to(device=device, dtype=torch.float32).reshape(-1, 4)
        if not len(xyxy):
            continue
        cell, params = encode_boxes(xyxy, grid, imgsz)
        keep = _largest_per_cell(cell, box_area(xyxy))
        dropped += int(len(xyxy) - len(keep))
        has_object[i, cell[keep]] = True
        boxes[i, cell[keep]] = params[keep]
        boxes_xyxy[i, cell[keep]] = xyxy[keep]
        labels[i, cell[keep]] = target["labels"].to(device).reshape(-1)[keep]
    return CellTargets(has_object, boxes, boxes_xyxy, labels, dropped)


def _largest_per_cell(cell: Tensor, area: Tensor) -> Tensor:
    """Indices of the objects kept: the largest ``area`` of each ``cell`` (the first on a tie)."""
    order = torch.argsort(-area, stable=True)
    order = order[torch.argsort(cell[order], stable=True)]
    sorted_cells = cell[order]
    first = torch.ones_like(sorted_cells, dtype=torch.bool)
    first[1:] = sorted_cells[1:] != sorted_cells[:-1]
    return order[first]


# -- the loss ------------------------------------------------------------------------------------
def responsible_predictor(iou: Tensor, params: Tensor, target_params: Tensor) -> Tensor:
    """Index ``int64[N, P]`` of the responsible predictor of every cell: the highest ``iou``
    (``Tensor[N, P, B]``); where every IoU is 0, the nearest ``params`` (``Tensor[N, P, B, 4]``) to
    ``target_params`` (``Tensor[N, P, 4]``) in squared distance."""
    best_iou, by_iou = iou.max(-1)
    by_distance = (params - target_params[:, :, None, :]).square().sum(-1).argmin(-1)
    return torch.where(best_iou > 0, by_iou, by_distance)


class YoloV1Loss(nn.Module):
    """The paper's sum-squared loss (see the module docstring) as a ``YoloDetector`` criterion.

    ``forward(out: YoloV1Output, targets) -> {"loss_box", "loss_obj", "loss_noobj", "loss_cls"}``,
    float32 scalars divided by the batch size; ``targets``: ``{"boxes": Tensor[M, 4] xyxy canvas
    pixels, "labels": int64[M] 0-based}`` an image.
    """

    def __init__(self, grid: int, imgsz: int, num_classes: int, lambda_coord: float = LAMBDA_COORD,
                 lambda_noobj: float = LAMBDA_NOOBJ) -> None:
        super().__init__()
        self.grid, self.imgsz, self.num_classes = int(grid), int(imgsz), int(num_classes)
        self.lambda_coord, self.lambda_noobj = float(lambda_coord), float(lambda_noobj)

    def forward(self, out: YoloV1Output, targets: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
        params, conf, probs = (t.float() for t in out)
        n = params.shape[0]
        cell = assign_targets(targets, self.grid, self.imgsz, params.device)
        with torch.no_grad():
            predicted = box_convert(decode_boxes(params, self.grid, self.imgsz), "cxcywh", "xyxy")
            iou = paired_iou(predicted, cell.boxes_xyxy[:, :, None, :])  # [N, P, B]
            chosen = responsible_predictor(iou, params, cell.boxes)
        responsible = F.one_hot(chosen, params.shape[2]).bool() & cell.has_object[..., None]  # [N, P, B]
        weight = responsible.float()
        box_error = (params - cell.boxes[:, :, None, :]).square().sum(-1)
        one_hot = F.one_hot(cell.labels, self.num_classes).float()
        class_error = (probs - one_hot).square().sum(-1)
        return {
            "loss_box": self.lambda_coord * (weight * box_error).sum() / n,
            "loss_obj": (weight * (conf - iou).square()).sum() / n,
            "loss_noobj": self.lambda_noobj * ((1 - weight) * conf.square()).sum() / n,
            "loss_cls": (cell.has_object.float() * class_error).sum() / n,
        }
