"""``detect anchors``: YOLO anchors fitted to a dataset's boxes by k-means (``d = 1 - IoU``), against
hand-picked ones.

The boxes are those of one split (default ``train``) as the detector sees them: each image
letterboxed to ``image_size`` (longer side to ``image_size``, :class:`detect.data.transforms.Letterbox`),
so box ``(w, h)`` x ``image_size / max(image width, height)``.  k-means as
:func:`detect.models.yolo.kmeans.kmeans_anchors` (k-means++ start from ``seed``, median updates);
the hand-picked anchors of the same ``k`` as :func:`detect.models.yolo.kmeans.hand_picked_anchors`
(for ``k = 9`` the YOLOv3 paper's COCO anchors scaled to ``image_size``).  Both are scored by the
mean over the boxes of their best anchor's IoU.  For ``k = 9`` each anchor's level is given: three
a stride, 8 / 16 / 32, by area, as ``detector_kwargs: {anchors: ...}`` of ``yolov3`` expects.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from classify.base.atomic import write_text_atomic
from detect.data.formats import load_split
from detect.models.yolo.kmeans import hand_picked_anchors, kmeans_anchors, mean_best_iou
from detect.structures import DatasetSplit

__all__ = ["AnchorReport", "fit_dataset_anchors", "letterboxed_box_sizes", "render_report", "run_anchors"]

#: strides of the three YOLOv3 levels, three anchors each (``k = 9``)
LEVEL_STRIDES = (8, 16, 32)
ANCHORS_PER_LEVEL = 3


@dataclass(frozen=True)
class AnchorReport:
    """What ``detect anchors`` found (``to_dict`` is its ``--json``).

    ``anchors``/``hand_picked``: ``(w, h)`` canvas pixels sorted by area; ``strides``: the level
    (stride) of each k-means anchor for ``k = 9``, else ``None``; ``*_iou``: mean best IoU.
    """

    dataset: str
    split: str
    image_size: int
    k: int
    seed: int
    num_images: int
    num_boxes: int
    anchors: list[list[float]]
    strides: list[int] | None
    kmeans_iou: float
    iterations: int
    converged: bool
    hand_picked: list[list[float]]
    hand_picked_rule: str
    hand_picked_iou: float
    update: str = "median"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def letterboxed_box_sizes(split: DatasetSplit, image_size: int) -> Tensor:
    """``Tensor[M, 2]`` float64: every box's ``(w, h)`` on the ``image_size`` letterbox canvas
    (scale ``image_size / max(width, height)`` of its image); boxes of zero width or height skipped."""
    pairs = [(o.width * image_size / max(r.width, r.height), o.height * image_size / max(r.width, r.height))
             for r in split.images for o in r.objects]
    sizes = torch.tensor(pairs, dtype=torch.float64).reshape(-1, 2)
    return sizes[(sizes > 0).all(dim=1)]


def fit_dataset_anchors(data: str | Path, k: int = 9, image_size: int = 320, split: str = "train",
                        fmt: str | None = None, seed: int = 0) -> AnchorReport:
    """k-means anchors of one split's letterboxed boxes, and the hand-picked ones of the same ``k``.

    Raises:
        FileNotFoundError: no dataset at ``data``.
        ValueError: ``k < 1``, ``image_size < 1``, a split without boxes, or ``k`` above its number of boxes.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"detect anchors: -k must be at least 1, got {k}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"detect anchors: --image-size must be a positive number of pixels, got {image_size}")
    data_split = load_split(Path(data), split, fmt)
    sizes = letterboxed_box_sizes(data_split, image_size)
    where = f"{data} (split {split!r}, {len(data_split)} images)"
    if len(sizes) == 0:
        raise ValueError(f"detect anchors: {where} has no boxes to fit anchors to")
    if k > len(sizes):
        raise ValueError(f"detect anchors: -k {k} is more than the {len(sizes)} boxes of {where}")
    result = kmeans_anchors(sizes, k, seed=seed)
    picked, rule = hand_picked_anchors(k, image_size)
    strides = [s for s in LEVEL_STRIDES for _ in range(ANCHORS_PER_LEVEL)] if k == len(LEVEL_STRIDES) * 3 else None
    return AnchorReport(
        dataset=str(data), split=split, image_size=image_size, k=k, seed=seed, num_images=len(data_split),
        num_boxes=len(sizes), anchors=_pairs(result.anchors), strides=strides, kmeans_iou=result.mean_iou,
        iterations=result.iterations, converged=result.converged, hand_picked=_pairs(picked),
        hand_picked_rule=rule, hand_picked_iou=mean_best_iou(sizes, picked))


def _pairs(anchors: Tensor) -> list[list[float]]:
    return [[round(float(w), 1), round(float(h), 1)] for w, h in anchors]


def render_report(report: AnchorReport) -> str:
    """The terminal table: the k anchors (w x h, level), hand-picked ones beside, and both mean IoUs."""
    fit = (f"{report.dataset} split {report.split}: {report.num_boxes} boxes in {report.num_images} images, "
           f"letterboxed to {report.image_size} px; k-means (1 - IoU, k-means++ seed {report.seed}, "
           f"{report.update} updates, {report.iterations} rounds{'' if report.converged else ', not converged'})")
    lines = [fit, f"hand-picked: {report.hand_picked_rule}", ""]
    header = f"{'#':>3}  {'k-means w x h':>15}  {'stride':>6}  {'hand-picked w x h':>17}"
    lines += [header, "-" * len(header)]
    for i, ((w, h), (pw, ph)) in enumerate(zip(report.anchors, report.hand_picked)):
        stride = str(report.strides[i]) if report.strides else "-"
        lines.append(f"{i + 1:>3}  {f'{w:g} x {h:g}':>15}  {stride:>6}  {f'{pw:g} x {ph:g}':>17}")
    lines += ["", f"mean best IoU: k-means {report.kmeans_iou:.4f} vs hand-picked {report.hand_picked_iou:.4f}"]
    if report.strides:
        lines.append(f"yolov3 detector_kwargs: anchors: {json.dumps(report.anchors)}")
    return "\n".join(lines)


def run_anchors(data: str | Path, k: int = 9, image_size: int = 320, split: str = "train", fmt: str | None = None,
                seed: int = 0, json_path: str | Path | None = None) -> AnchorReport:
    """:func:`fit_dataset_anchors`, print :func:`render_report`, and write the report as JSON to ``json_path``."""
    report = fit_dataset_anchors(data, k, image_size, split, fmt, seed)
    print(render_report(report))
    if json_path is not None:
        write_text_atomic(json_path, json.dumps(report.to_dict(), indent=2) + "\n")
        print(f"wrote {json_path}")
    return report
