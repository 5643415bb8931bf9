"""What every export graph shares: the output layout, the refusal error, and the batched,
traceable pieces of post-processing (group NMS, per-image ranks).

An export graph is an ``nn.Module`` built from an eager detector, ``forward(images:
float32[N, 3, H, W] in [0, 1]) -> (boxes, scores, labels, batch_index)``, the whole inference
(resize / letterbox, normalisation, the network, decoding, NMS, the map back to the input's
pixels) in tensor operations only, so that one trace serves every batch size and image size.
Every image of a call has the same ``H x W`` (the runtime groups images by size).

Output layout (:data:`OUTPUT_NAMES`), flat over the batch, ``K`` detections in all:

* ``boxes``: ``float32[K, 4]`` xyxy in pixels of the input images (the Detector contract's boxes);
* ``scores``: ``float32[K]``;
* ``labels``: ``int64[K]``, 0-based class indices;
* ``batch_index``: ``int64[K]``, the image each detection belongs to.

Detections are sorted by decreasing score over the whole batch, so ``batch_index == i`` selects
image ``i``'s detections best first, at most ``max_detections`` of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.ops import nms

from detect.models.postprocess import PostprocessSettings

__all__ = ["INPUT_NAME", "OUTPUT_NAMES", "ExportGraph", "NotExportable", "clip_to", "dims", "flat_image_index",
           "group_nms", "image_shape", "keep_first_per_image", "rank_within_image"]

#: the graph's outputs, in order (see the module docstring)
OUTPUT_NAMES = ("boxes", "scores", "labels", "batch_index")
#: the graph's one input
INPUT_NAME = "images"


class NotExportable(ValueError):
    """A detector that cannot be exported; the message names the model and the reason."""


class ExportGraph(nn.Module):
    """Base of the export graphs: ``forward(images) -> (boxes, scores, labels, batch_index)``.

    Subclasses set :attr:`family`, :attr:`settings` (the post-processing baked into the graph)
    and describe their preprocessing in :meth:`preprocessing` for the file's metadata.
    """

    family: str = ""
    settings: PostprocessSettings

    def preprocessing(self) -> dict[str, Any]:
        """What the graph does to an input image before the network (recorded in the metadata)."""
        raise NotImplementedError

    def image_size(self) -> int:
        """The detector's input size (R-CNN: the resized short side; YOLO: the letterbox side)."""
        raise NotImplementedError

    def config(self) -> Mapping[str, Any]:
        """The detector's build configuration (recorded in the metadata)."""
        return {}


def image_shape(images: Tensor) -> tuple[Tensor | int, Tensor]:
    """``(N, hw)``: the batch size and ``int64[2]`` (height, width) of ``images`` (N, 3, H, W).

    Under tracing both come from the input's shape at run time, not from the example's.
    """
    shape = torch._shape_as_tensor(images)
    return images.shape[0], shape[2:4]


def dims(values: Tensor) -> tuple[Tensor | int, Tensor | int]:
    """The two elements of an ``int64[2]`` size tensor as arguments of ``F.interpolate`` / ``F.pad``:
    0-dim tensors while tracing (the sizes stay dynamic in the graph), Python ints otherwise."""
    if torch.jit.is_tracing():
        return values[0], values[1]
    first, second = values.tolist()
    return int(first), int(second)


def group_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """Indices of the kept boxes by decreasing score; boxes of different ``groups`` never
    suppress each other.

    torchvision's coordinate trick (each group's boxes shifted by ``group * (max coordinate +
    1)``, one NMS), which is what ``torchvision.ops.batched_nms`` traces to, written so that it
    also runs on an empty input inside a graph.  The shift costs float32 precision far from the
    origin (about 0.01 px at offsets of 1e5 px): an IoU within ~1e-4 of the threshold may be
    decided differently from an NMS per group.
    """
    max_coordinate = torch.cat([boxes.reshape(-1), boxes.new_zeros(1)]).max()
    offsets = groups.to(boxes.dtype) * (max_coordinate + 1)
    return nms(boxes + offsets[:, None], scores, iou_threshold)


def rank_within_image(batch_index: Tensor, num_images: Tensor | int) -> Tensor:
    """For each detection, the number of earlier detections of the same image (``int64[K]``)."""
    same = (batch_index[:, None] == torch.arange(num_images, device=batch_index.device)[None, :]).to(torch.int64)
    return (same.cumsum(0) * same).sum(1) - 1


def keep_first_per_image(order: Tensor, batch_index: Tensor, num_images: Tensor | int, limit: int) -> Tensor:
    """``order`` (indices sorted by decreasing score) without the detections beyond each image's
    first ``limit``."""
    rank = rank_within_image(batch_index[order], num_images)
    return order[rank < limit]


def flat_image_index(num_images: Tensor | int, like: Tensor) -> Tensor:
    """``int64`` image index of every element of ``like`` (``[N, K]``), flattened to ``[N * K]``."""
    return torch.arange(num_images, device=like.device).view(-1, 1).expand_as(like).reshape(-1)


def clip_to(boxes: Tensor, height: Tensor, width: Tensor) -> Tensor:
    """xyxy ``boxes`` (``[..., 4]``) clipped to ``[0, width] x [0, height]`` (float tensors)."""
    zero = torch.zeros((), dtype=boxes.dtype, device=boxes.device)
    x = torch.min(torch.max(boxes[..., 0::2], zero), width)
    y = torch.min(torch.max(boxes[..., 1::2], zero), height)
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)
