"""Anchor shapes by k-means on box sizes with the distance ``1 - IoU`` (YOLOv2, Redmon & Farhadi 2017).

Boxes and anchors are ``(w, h)`` pairs in pixels (of the letterboxed canvas the detector sees);
the IoU of two pairs is that of the boxes aligned at a corner (:func:`shape_iou`), so only their
shapes count, not their positions.  :func:`kmeans_anchors`:

* initialisation: k-means++ (Arthur & Vassilvitskii 2007) with the same distance: the first
  centre is a box drawn uniformly, each next one a box drawn with probability proportional to
  ``d(box)^2``, ``d = 1 - IoU`` with the nearest centre chosen so far; a ``torch.Generator``
  seeded by ``seed`` draws them, so a seed gives the same anchors on every machine;
* iterations (Lloyd): each box goes to the centre of highest IoU, each centre becomes the
  **median** ``(w, h)`` of its boxes (``update="median"``, the default: robust to the long tail
  of large boxes; ``"mean"`` as in darknet's ``calc_anchors``); a centre left without boxes is
  moved to the box worst served (lowest best IoU); stops when no box changes centre (or after
  ``max_iter`` rounds);
* result: the ``k`` centres sorted by area, and the **mean best IoU** of the boxes with them
  (YOLOv2's "Avg IOU": for each box the IoU of its best anchor, averaged).

Hand-picked anchors to compare with at the same ``k`` (:func:`hand_picked_anchors`): for ``k = 9``
the YOLOv3 paper's COCO anchors (:data:`YOLOV3_COCO_ANCHORS`, at 416 px) scaled by
``image_size / 416``; for any other ``k`` a fixed ladder (:data:`LADDER_RULE`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["KMeansResult", "LADDER_RULE", "YOLOV3_COCO_ANCHORS", "YOLOV3_COCO_SIZE", "as_sizes",
           "hand_picked_anchors", "kmeans_anchors", "kmeans_pp_init", "ladder_anchors", "mean_best_iou",
           "paper_anchors", "shape_iou"]

#: the nine (w, h) anchors of YOLOv3 (Redmon & Farhadi 2018), k-means on COCO at 416 x 416 px,
#: sorted by area; three a level from stride 8 to stride 32
YOLOV3_COCO_ANCHORS: tuple[tuple[int, int], ...] = (
    (10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119), (116, 90), (156, 198), (373, 326))
YOLOV3_COCO_SIZE = 416
#: the hand-picked rule for k != 9 (said in ``detect anchors``'s output)
LADDER_RULE = ("first k of a ladder: ceil(k/3) sizes spaced geometrically from 16 to 256 px at 416 px "
               "(scaled by image_size/416; one size: 64), each as w:h 1:1, 1:2, 2:1 of the same area")
LADDER_RATIOS = (1.0, 0.5, 2.0)  # w / h
LADDER_RANGE = (16.0, 256.0)
UPDATES = ("median", "mean")


@dataclass(frozen=True)
class KMeansResult:
    """What :func:`kmeans_anchors` found.

    Attributes:
        anchors: ``Tensor[k, 2]`` float64 ``(w, h)`` pixels, sorted by area (ascending).
        mean_iou: mean over the boxes of the IoU of their best anchor.
        assignment: ``Tensor[N]`` int64, the anchor (index into ``anchors``) of each box.
        iterations: Lloyd rounds run.
        converged: whether the last round changed no assignment.
    """

    anchors: Tensor
    mean_iou: float
    assignment: Tensor
    iterations: int
    converged: bool


def as_sizes(wh: Tensor | Sequence[Sequence[float]], where: str = "box sizes") -> Tensor:
    """``wh`` as a float64 ``Tensor[N, 2]`` of positive, finite ``(w, h)``; ``ValueError`` otherwise."""
    sizes = torch.as_tensor(wh, dtype=torch.float64)
    if sizes.ndim != 2 or sizes.shape[1] != 2:
        raise ValueError(f"{where}: expected (w, h) pairs, a [N, 2] array, got shape {list(sizes.shape)}")
    bad = (~torch.isfinite(sizes) | (sizes <= 0)).any(dim=1).nonzero()
    if bad.numel():
        i = int(bad[0])
        raise ValueError(f"{where}: pair {i} is {sizes[i].tolist()}, expected a positive finite width and height")
    return sizes


def shape_iou(wh1: Tensor, wh2: Tensor) -> Tensor:
    """IoU of boxes aligned at a corner: ``wh1: Tensor[N, 2]``, ``wh2: Tensor[K, 2]`` -> ``Tensor[N, K]``.

    ``min(w1, w2) * min(h1, h2) / (w1 h1 + w2 h2 - that)``: the IoU the two boxes would have with
    the same centre.
    """
    inter = torch.minimum(wh1[:, None, 0], wh2[None, :, 0]) * torch.minimum(wh1[:, None, 1], wh2[None, :, 1])
    area1 = wh1[:, 0] * wh1[:, 1]
    area2 = wh2[:, 0] * wh2[:, 1]
    return inter / (area1[:, None] + area2[None, :] - inter)


def mean_best_iou(wh: Tensor | Sequence[Sequence[float]], anchors: Tensor | Sequence[Sequence[float]]) -> float:
    """Mean over the boxes ``wh`` (``[N, 2]``) of the IoU of their best anchor (``[K, 2]``)."""
    sizes, anchors = as_sizes(wh), as_sizes(anchors, "anchors")
    return float(shape_iou(sizes, anchors).max(dim=1).values.mean())


def kmeans_pp_init(sizes: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """``k`` initial centres (``Tensor[k, 2]``) drawn from ``sizes`` by k-means++ with ``d = 1 - IoU``."""
    first = int(torch.randint(len(sizes), (1,), generator=generator))
    centres = [sizes[first]]
    nearest = 1.0 - shape_iou(sizes, sizes[first:first + 1])[:, 0]
    for _ in range(1, k):
        weights = nearest.clamp(min=0) ** 2
        if float(weights.sum()) <= 0:  # every box equals a centre already: any box will do
            weights = torch.ones_like(weights)
        pick = int(torch.multinomial(weights, 1, generator=generator))
        centres.append(sizes[pick])
        nearest = torch.minimum(nearest, 1.0 - shape_iou(sizes, sizes[pick:pick + 1])[:, 0])
    return torch.stack(centres)


def kmeans_anchors(wh: Tensor | Sequence[Sequence[float]], k: int, seed: int = 0, max_iter: int = 300,
                   update: str = "median", init: Tensor | Sequence[Sequence[float]] | None = None) -> KMeansResult:
    """k-means of box shapes with ``d = 1 - shape IoU`` (see the module docstring).

    Args:
        wh: ``[N, 2]`` box ``(w, h)`` in pixels.
        k: anchors wanted, ``1 <= k <= N``.
        seed: seeds the k-means++ initialisation.
        max_iter: most Lloyd rounds.
        update: ``"median"`` or ``"mean"`` of a cluster's boxes as its new centre.
        init: ``[k, 2]`` initial centres instead of k-means++ (e.g. to compare with a bad start).

    Raises:
        ValueError: ``k`` outside ``[1, N]``, bad sizes, or an unknown ``update``.
    """
    sizes = as_sizes(wh)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(sizes):
        raise ValueError(f"k-means anchors: k must be an integer in [1, number of boxes = {len(sizes)}], got {k!r}")
    if update not in UPDATES:
        raise ValueError(f"k-means anchors: update must be one of {UPDATES}, got {update!r}")
    if init is None:
        centres = kmeans_pp_init(sizes, k, torch.Generator().manual_seed(int(seed)))
    else:
        centres = as_sizes(init, "k-means anchors: init").clone()
        if len(centres) != k:
            raise ValueError(f"k-means anchors: init must hold k = {k} pairs, got {len(centres)}")
    assignment, converged, rounds = None, False, 0
    for rounds in range(1, max_iter + 1):
        iou = shape_iou(sizes, centres)
        new = iou.argmax(dim=1)
        if assignment is not None and torch.equal(new, assignment):
            converged = True
            break
        assignment = new
        centres = _updated_centres(sizes, assignment, centres, iou.max(dim=1).values, update)
    order = (centres[:, 0] * centres[:, 1]).argsort()
    anchors = centres[order]
    iou = shape_iou(sizes, anchors)
    return KMeansResult(anchors, float(iou.max(dim=1).values.mean()), iou.argmax(dim=1), rounds, converged)


def _updated_centres(sizes: Tensor, assignment: Tensor, centres: Tensor, best_iou: Tensor, update: str) -> Tensor:
    """Each centre moved to the median (or mean) of its boxes; an empty one to the worst-served box."""
    out = centres.clone()
    worst = best_iou.argsort()  # boxes from the worst served up
    used = 0
    for j in range(len(centres)):
        members = sizes[assignment == j]
        if len(members):
            out[j] = members.median(dim=0).values if update == "median" else members.mean(dim=0)
        else:
            out[j] = sizes[worst[used]]
            used += 1
    return out


def paper_anchors(image_size: int = YOLOV3_COCO_SIZE) -> Tensor:
    """The YOLOv3 COCO anchors scaled to ``image_size`` (``x image_size / 416``), ``Tensor[9, 2]`` float64."""
    return torch.tensor(YOLOV3_COCO_ANCHORS, dtype=torch.float64) * (image_size / YOLOV3_COCO_SIZE)


def ladder_anchors(k: int, image_size: int = YOLOV3_COCO_SIZE) -> Tensor:
    """The first ``k`` anchors of :data:`LADDER_RULE`, sorted by area: ``Tensor[k, 2]`` float64."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"ladder anchors: k must be an integer >= 1, got {k!r}")
    levels = math.ceil(k / len(LADDER_RATIOS))
    low, high = LADDER_RANGE
    sides = [math.sqrt(low * high)] if levels == 1 else [
        low * (high / low) ** (i / (levels - 1)) for i in range(levels)]
    scale = image_size / YOLOV3_COCO_SIZE
    pairs = [(s * scale * math.sqrt(r), s * scale / math.sqrt(r)) for s in sides for r in LADDER_RATIOS][:k]
    anchors = torch.tensor(pairs, dtype=torch.float64)
    return anchors[(anchors[:, 0] * anchors[:, 1]).argsort(stable=True)]


def hand_picked_anchors(k: int, image_size: int = YOLOV3_COCO_SIZE) -> tuple[Tensor, str]:
    """Anchors not fitted to any data, to compare k-means with: ``(Tensor[k, 2], the rule in words)``.

    ``k = 9``: the YOLOv3 paper's COCO anchors scaled to ``image_size``; otherwise :func:`ladder_anchors`.
    """
    if k == len(YOLOV3_COCO_ANCHORS):
        return paper_anchors(image_size), f"YOLOv3 paper's COCO anchors x {image_size}/{YOLOV3_COCO_SIZE}"
    return ladder_anchors(k, image_size), LADDER_RULE
