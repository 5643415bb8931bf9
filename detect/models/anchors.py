"""Anchor sizes for the RPN: derived from the feature strides, or fitted to a dataset's boxes.

An anchor *size* is the side, in input pixels (after the detector's resize), of the square whose
area the anchor has; each size is combined with every aspect ratio ``h / w`` (torchvision's
:class:`~torchvision.models.detection.anchor_utils.AnchorGenerator` convention), so a level with
``S`` sizes and ``R`` ratios has ``S * R`` anchors per feature-map cell.

Sizes are returned as ``tuple[tuple[int, ...], ...]``: one inner tuple per pyramid level, from
the finest (smallest stride) to the coarsest, ready for ``AnchorGenerator(sizes, ratios)``.

* :func:`anchor_sizes_for` -- ``base * stride * scale`` for every level and scale; with the
  defaults (``base=8``, one scale) strides 4, 8, 16, 32, 64 give torchvision's FPN sizes
  32, 64, 128, 256, 512, and a single stride-16 level with ``scales=(0.25, 0.5, 1, 2, 4)`` gives
  the C4 sizes 32 ... 512.
* :func:`fit_anchor_sizes` -- sizes at evenly spaced quantiles of ``sqrt(w * h)`` of the training
  boxes, so that every level (or every size of a single level) sees a similar share of objects.
* :func:`best_anchor_iou` -- for every box, the IoU of its best-matching anchor: the RPN counts
  an anchor positive at IoU >= 0.7, so the share of boxes reaching 0.7 says how many objects get
  a real positive rather than only their best low-quality match.  The grid matters as much as
  the sizes: a size much smaller than about 4 strides leaves most boxes between grid points
  (on the digit scenes, quantile-fitted sizes 11-117 px on strides 4-64 give 34% of boxes
  >= 0.7; ``anchor_sizes_for(info, base=4, scales=(2 ** (-1 / 3), 1, 2 ** (1 / 3)))``, 13-323 px,
  gives 76%).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from classify.models.features import FeatureInfo
from detect.box_ops import box_iou

__all__ = ["AnchorSizes", "anchor_generator", "anchor_sizes_for", "best_anchor_iou",
           "fit_anchor_sizes", "normalize_anchor_sizes"]

AnchorSizes = tuple[tuple[int, ...], ...]


def anchor_sizes_for(
    feature_info: Sequence[FeatureInfo], base: float = 8.0, scales: Sequence[float] = (1.0,)
) -> AnchorSizes:
    """Sizes ``round(base * stride * scale)`` px per level of ``feature_info`` and per scale.

    >>> anchor_sizes_for([FeatureInfo("p2", 256, 4), FeatureInfo("p3", 256, 8)])
    ((32,), (64,))
    """
    if not feature_info:
        raise ValueError("anchor_sizes_for: feature_info is empty; expected at least one level")
    if base <= 0 or not scales or any(s <= 0 for s in scales):
        raise ValueError(f"anchor_sizes_for: base and scales must be positive, got base={base}, "
                         f"scales={tuple(scales)}")
    return tuple(tuple(max(1, round(base * f.stride * s)) for s in sorted(scales))
                 for f in feature_info)


def fit_anchor_sizes(boxes: Tensor | Sequence[Tensor], num_levels: int,
                     sizes_per_level: int = 1) -> AnchorSizes:
    """Anchor sizes fitted to ground-truth ``boxes`` (xyxy pixels, ``Tensor[N, 4]`` or a list).

    The box sizes ``sqrt(w * h)`` are sorted and the ``K = num_levels * sizes_per_level``
    quantiles at probabilities ``(k + 0.5) / K``, ``k = 0 .. K-1``, become the sizes, rounded to
    whole pixels and made strictly increasing; level ``l`` gets the ``l``-th group of
    ``sizes_per_level`` of them (so the finest level gets the smallest).  Pass boxes in the
    coordinates the detector sees, i.e. after its resize (``image_size``).

    >>> b = torch.tensor([[0, 0, 10, 10], [0, 0, 20, 20], [0, 0, 40, 40], [0, 0, 80, 80.]])
    >>> fit_anchor_sizes(b, num_levels=2)
    ((18,), (50,))
    """
    if isinstance(boxes, Sequence) and not isinstance(boxes, Tensor):
        boxes = torch.cat([b.reshape(-1, 4) for b in boxes]) if boxes else torch.zeros(0, 4)
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"fit_anchor_sizes: boxes must be Tensor[N, 4] (xyxy), "
                         f"got shape {list(boxes.shape)}")
    if num_levels < 1 or sizes_per_level < 1:
        raise ValueError(f"fit_anchor_sizes: num_levels and sizes_per_level must be >= 1, "
                         f"got {num_levels} and {sizes_per_level}")
    wh = (boxes[:, 2:] - boxes[:, :2]).double()
    side = wh.clamp(min=0).prod(dim=1).sqrt()
    side = side[side > 0]
    if side.numel() == 0:
        raise ValueError("fit_anchor_sizes: no box with positive area to fit anchors to")
    count = num_levels * sizes_per_level
    probs = (torch.arange(count, dtype=torch.float64) + 0.5) / count
    sizes = _strictly_increasing([max(1, round(float(q))) for q in torch.quantile(side, probs)])
    return tuple(tuple(sizes[i:i + sizes_per_level]) for i in range(0, count, sizes_per_level))


def _strictly_increasing(sizes: list[int]) -> list[int]:
    out: list[int] = []
    for s in sizes:
        out.append(max(s, out[-1] + 1) if out else s)
    return out


def normalize_anchor_sizes(sizes: Sequence[float] | Sequence[Sequence[float]],
                           feature_info: Sequence[FeatureInfo]) -> AnchorSizes:
    """Check user-given ``sizes`` against the detector's levels; one int a level is allowed.

    ``(32, 64)`` for two levels means ``((32,), (64,))``. Every level needs the same number of
    sizes (the RPN head is shared across levels).
    """
    names = [f"{f.name} (stride {f.stride})" for f in feature_info]
    nested = tuple(tuple(s) if isinstance(s, Sequence) else (s,) for s in sizes)
    if len(nested) != len(feature_info):
        raise ValueError(f"anchor_sizes: expected one entry per pyramid level, {len(feature_info)} "
                         f"levels [{', '.join(names)}], got {len(nested)}: {tuple(sizes)}")
    if len({len(s) for s in nested}) != 1 or any(not s or min(s) <= 0 for s in nested):
        raise ValueError(f"anchor_sizes: every level needs the same number (>= 1) of positive "
                         f"sizes, got {nested}")
    return nested


def anchor_generator(sizes: AnchorSizes, aspect_ratios: Sequence[float]) -> AnchorGenerator:
    """torchvision's ``AnchorGenerator`` with ``sizes`` per level and the same ratios on each."""
    if not aspect_ratios or any(r <= 0 for r in aspect_ratios):
        raise ValueError(f"aspect_ratios must be positive h/w ratios, got {tuple(aspect_ratios)}")
    ratios = tuple(float(r) for r in aspect_ratios)
    return AnchorGenerator(sizes, (ratios,) * len(sizes))


def best_anchor_iou(boxes: Tensor, sizes: AnchorSizes, aspect_ratios: Sequence[float],
                    strides: Sequence[int], image_size: tuple[int, int], chunk: int = 1024) -> Tensor:
    """IoU of each box's best anchor, ``Tensor[N]``, for boxes (xyxy pixels, ``Tensor[N, 4]``) of
    images of ``image_size`` ``(height, width)`` as the detector sees them.

    The anchors are exactly the RPN's: torchvision's ``AnchorGenerator(sizes, ratios)`` over
    feature maps of ``ceil(image_size / stride)`` cells, one stride per level of ``sizes``.
    """
    if len(strides) != len(sizes):
        raise ValueError(f"best_anchor_iou: one stride per level expected, got {len(strides)} "
                         f"strides for {len(sizes)} levels")
    height, width = image_size
    images = ImageList(torch.zeros(1, 1, height, width), [(height, width)])
    maps = [torch.zeros(1, 1, -(-height // s), -(-width // s)) for s in strides]
    anchors = anchor_generator(sizes, aspect_ratios)(images, maps)[0]
    boxes = boxes.reshape(-1, 4).float()
    if boxes.numel() == 0:
        return torch.zeros(0)
    return torch.cat([box_iou(part, anchors).amax(dim=1) for part in boxes.split(chunk)])
