"""The single-shot detectors (ours and the ultralytics YOLOv8 / YOLO11 peers) as one batched export graph.

:class:`YoloGraph` runs what :class:`detect.models.yolo.base.YoloDetector` runs, for a batch of
same-size images at once: the letterbox of :class:`detect.data.transforms.Letterbox`
(longer side to ``imgsz``, bilinear with antialiasing, centred on a ``114 / 255`` canvas; the
new size rounded in float64 as Python rounds it), the network (its ``[N, 4 + C, A]`` head output:
cxcywh canvas pixels, class probabilities), the best class per anchor, ``score >
score_threshold``, per-class NMS (per image and class), the ``max_detections`` best an image,
and the boxes mapped back to the input's pixels and clipped to it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from detect.box_ops import box_convert
from detect.export.graph import (
    ExportGraph,
    NotExportable,
    clip_to,
    dims,
    flat_image_index,
    group_nms,
    image_shape,
    keep_first_per_image,
)
from detect.models.yolo.base import decoded_output

__all__ = ["YoloGraph", "check_exportable"]


def check_exportable(model: torch.nn.Module, name: str) -> None:
    """Raise :class:`NotExportable` for ultralytics heads the graph does not decode."""
    from detect.models.peers.ultralytics import UltralyticsDetector

    if not isinstance(model, UltralyticsDetector):
        return
    head = model.net.model[-1]
    if getattr(head, "end2end", False):
        raise NotExportable(f"{name}: cannot export an end-to-end (NMS-free) ultralytics head; the graph decodes "
                            "the [N, 4 + classes, anchors] output of YOLOv8 / YOLO11 heads")
    if type(head).__name__ != "Detect":
        raise NotExportable(f"{name}: cannot export an ultralytics {type(head).__name__} head (boxes only: Detect)")


class YoloGraph(ExportGraph):
    """Eval-mode :class:`~detect.models.yolo.base.YoloDetector` over a batch of same-size images (see the
    module docstring)."""

    family = "yolo"

    def __init__(self, model: torch.nn.Module, name: str = "yolo") -> None:
        super().__init__()
        self.net = model.net
        self.imgsz = int(model.imgsz)
        self.fill = float(model.letterbox.fill)
        self.settings = model.postprocess_settings()
        self.name = name
        self.num_classes = int(model.num_classes)
        self.model_config = dict(model.config)

    def preprocessing(self) -> dict[str, Any]:
        return {"kind": "letterbox", "size": self.imgsz, "fill": self.fill, "interpolation": "bilinear",
                "antialias": True, "description": "resize so the longer side is size (aspect kept, antialiased), "
                "centre on a size x size canvas of fill"}

    def image_size(self) -> int:
        return self.imgsz

    def config(self) -> dict[str, Any]:
        return {**self.model_config, "imgsz": self.imgsz, "num_classes": self.num_classes}

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        num_images, hw = image_shape(images)
        canvas, scale, pad = self._letterbox(images, hw)
        raw = decoded_output(self.net(canvas)).float()  # [N, 4 + C, A]
        scores, labels = raw[:, 4:].max(dim=1)  # [N, A]
        boxes = raw[:, :4].transpose(1, 2)  # [N, A, 4] cxcywh
        image = flat_image_index(num_images, scores)
        scores, labels, boxes = scores.reshape(-1), labels.reshape(-1), boxes.reshape(-1, 4)
        keep = torch.where(scores > self.settings.score_threshold)[0]
        boxes = box_convert(boxes[keep], "cxcywh", "xyxy")
        scores, labels, image = scores[keep], labels[keep], image[keep]
        order = group_nms(boxes, scores, image * (raw.shape[1] - 4) + labels, self.settings.nms_threshold)
        order = keep_first_per_image(order, image, num_images, self.settings.max_detections)
        pad_xy = pad.flip(0).to(torch.float32)
        boxes = (boxes[order] - torch.cat((pad_xy, pad_xy)).to(boxes.device)) / scale.to(boxes.device, torch.float32)
        size = hw.to(torch.float32)
        return clip_to(boxes, size[0], size[1]), scores[order], labels[order], image[order]

    def _letterbox(self, images: Tensor, hw: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The ``imgsz`` canvases, the scale (``float64[1]``) and the pads (``int64[2]``: top, left)."""
        hw_f = hw.to(torch.float64)
        scale = torch.tensor([float(self.imgsz)], dtype=torch.float64) / hw_f.max(0, keepdim=True)[0]
        size = torch.clamp(torch.round(hw_f * scale), min=1).to(torch.int64)  # Python's round: half to even
        pad = (self.imgsz - size) // 2
        resized = F.interpolate(images, size=dims(size), mode="bilinear", align_corners=False, antialias=True)
        (top, left), (height, width) = dims(pad), dims(size)
        canvas = F.pad(resized, (left, self.imgsz - width - left, top, self.imgsz - height - top), value=self.fill)
        return canvas, scale, pad
