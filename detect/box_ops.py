"""Box operations, thin wrappers over :mod:`torchvision.ops`.

Box formats (every function takes ``Tensor[N, 4]`` float unless it says otherwise):

* ``xyxy``:   ``(x1, y1, x2, y2)``, corners; the project's convention (``detect.structures``),
  absolute continuous pixel coordinates with ``0 <= x1 < x2 <= width``.
* ``xywh``:   ``(x1, y1, w, h)``, top-left corner and size (COCO).
* ``cxcywh``: ``(cx, cy, w, h)``, centre and size (YOLO, DETR).

Functions that do geometry (area, IoU, clipping, NMS) take ``xyxy`` only.  :func:`box_iou` and
:func:`box_ioa` are the project's one IoU: they also take numpy arrays (the evaluators' float64
boxes) and then return one, computed by the same code in the arrays' dtype.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
import torchvision.ops as tv_ops
from torch import Tensor

Boxes = Tensor | np.ndarray

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


def _check_format(fmt: str) -> None:
    if fmt not in BOX_FORMATS:
        raise ValueError(f"unknown box format {fmt!r}; valid formats are {', '.join(BOX_FORMATS)}")


def _check_shape(boxes: Tensor) -> None:
    if boxes.ndim < 1 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have shape [..., 4], got {list(boxes.shape)}")


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert ``boxes`` (``Tensor[..., 4]``) from ``in_fmt`` to ``out_fmt``.

    Formats: ``"xyxy"``, ``"xywh"``, ``"cxcywh"`` (see the module docstring). Always returns
    a new tensor.
    """
    _check_format(in_fmt)
    _check_format(out_fmt)
    _check_shape(boxes)
    return tv_ops.box_convert(boxes, in_fmt, out_fmt)


def _scale_xy(boxes: Tensor, sx: float, sy: float) -> Tensor:
    _check_shape(boxes)
    factors = torch.tensor([sx, sy, sx, sy], dtype=boxes.dtype, device=boxes.device)
    return boxes * factors


def normalize_boxes(boxes: Tensor, width: float, height: float) -> Tensor:
    """Absolute pixels -> ``[0, 1]`` units: x and w divided by ``width``, y and h by ``height``.

    Per coordinate, so it works for all of ``xyxy``, ``xywh`` and ``cxcywh``.
    """
    return _scale_xy(boxes, 1.0 / width, 1.0 / height)


def denormalize_boxes(boxes: Tensor, width: float, height: float) -> Tensor:
    """``[0, 1]`` units -> absolute pixels; the inverse of :func:`normalize_boxes`."""
    return _scale_xy(boxes, width, height)


def box_area(boxes: Tensor) -> Tensor:
    """Areas of ``xyxy`` boxes, ``Tensor[N]``."""
    return tv_ops.box_area(boxes)


def _both_empty(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """``[N, M]`` mask of pairs where both boxes have zero area (their union is empty)."""
    return (box_area(boxes1)[:, None] == 0) & (box_area(boxes2)[None, :] == 0)


def _numpy_in_numpy_out(fn: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Boxes, Boxes], Boxes]:
    """Let a pairwise box function take two numpy arrays too (returning one, same dtype)."""

    @functools.wraps(fn)
    def wrapper(boxes1: Boxes, boxes2: Boxes) -> Boxes:
        if isinstance(boxes1, np.ndarray) and isinstance(boxes2, np.ndarray):
            return fn(torch.from_numpy(boxes1), torch.from_numpy(boxes2)).numpy()
        return fn(boxes1, boxes2)

    return wrapper


@_numpy_in_numpy_out
def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU of ``xyxy`` boxes ``[N, 4]`` x ``[M, 4]`` -> ``[N, M]`` (numpy in, numpy out too).

    Boxes need ``x1 <= x2`` and ``y1 <= y2``. Two zero-area boxes have an empty union;
    their IoU is defined as 0 (torchvision gives NaN).
    """
    iou = tv_ops.box_iou(boxes1, boxes2)
    return torch.where(_both_empty(boxes1, boxes2), torch.zeros_like(iou), iou)


@_numpy_in_numpy_out
def box_ioa(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise intersection over the area of the first box (COCO's overlap with crowd regions):
    ``xyxy`` ``[N, 4]`` x ``[M, 4]`` -> ``[N, M]`` (numpy in, numpy out too); 0 where that area is 0."""
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area = box_area(boxes1)[:, None]
    return torch.where(area > 0, inter / torch.where(area > 0, area, 1), torch.zeros_like(inter))


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise generalized IoU of ``xyxy`` boxes ``[N, 4]`` x ``[M, 4]`` -> ``[N, M]``.

    ``GIoU = IoU - (C - U) / C`` with ``C`` the area of the smallest enclosing box and ``U``
    the union. Where both boxes have zero area, IoU is 0 and the penalty is 1 if ``C > 0``
    (so GIoU = -1) or 0 if ``C == 0`` (so GIoU = 0), instead of torchvision's NaN.
    """
    giou = tv_ops.generalized_box_iou(boxes1, boxes2)
    both_empty = _both_empty(boxes1, boxes2)
    if not both_empty.any():
        return giou
    lt = torch.min(boxes1[:, None, :2], boxes2[None, :, :2])
    rb = torch.max(boxes1[:, None, 2:], boxes2[None, :, 2:])
    enclosing = (rb - lt).prod(dim=-1)
    fixed = torch.where(enclosing > 0, -1.0, 0.0).to(giou)
    return torch.where(both_empty, fixed, giou)


def clip_boxes_to_image(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Clip ``xyxy`` boxes to an image of ``size = (height, width)``."""
    return tv_ops.clip_boxes_to_image(boxes, size)


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices (``int64[K]``) of the ``xyxy`` boxes whose width and height are both ``>= min_size``."""
    return tv_ops.remove_small_boxes(boxes, min_size)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS on ``xyxy`` boxes: drops boxes with IoU ``> iou_threshold`` with a better one.

    Returns the kept indices (``int64``) sorted by decreasing score.
    """
    return tv_ops.nms(boxes, scores, iou_threshold)


def batched_nms(boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float) -> Tensor:
    """:func:`nms` run independently per label; boxes of different labels never suppress each other.

    Returns the kept indices (``int64``) sorted by decreasing score.
    """
    return tv_ops.batched_nms(boxes, scores, labels, iou_threshold)


def _first_bad_box(boxes: Tensor, width: float | None, height: float | None) -> tuple[int, str] | None:
    """Index of the first invalid box and the reason, or ``None`` when all are valid."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    checks = [
        (~torch.isfinite(boxes).all(dim=-1), "has a non-finite coordinate"),
        (x2 <= x1, "has x2 <= x1 (zero or negative width)"),
        (y2 <= y1, "has y2 <= y1 (zero or negative height)"),
    ]
    if width is not None:
        checks.append(((x1 < 0) | (x2 > width), f"lies outside the image width {width}"))
    if height is not None:
        checks.append(((y1 < 0) | (y2 > height), f"lies outside the image height {height}"))
    bad = torch.stack([mask for mask, _ in checks]).any(dim=0)
    if not bad.any():
        return None
    index = int(bad.nonzero()[0])
    reason = next(why for mask, why in checks if mask[index])
    return index, reason


def validate_boxes(
    boxes: Tensor, width: float | None = None, height: float | None = None, where: str = ""
) -> None:
    """Raise ``ValueError`` unless ``boxes`` is a valid ``Tensor[N, 4]`` of ``xyxy`` boxes.

    A valid box is finite, has ``x1 < x2`` and ``y1 < y2`` and, when ``width`` / ``height`` are
    given, lies inside ``[0, width] x [0, height]``. The message names the first bad box's index,
    its coordinates and the reason, prefixed by ``where`` (e.g. a file name or image id).
    """
    prefix = f"{where}: " if where else ""
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{prefix}boxes must have shape [N, 4], got {list(boxes.shape)}")
    found = _first_bad_box(boxes, width, height)
    if found is not None:
        index, reason = found
        raise ValueError(f"{prefix}box {index} {boxes[index].tolist()} {reason}")
