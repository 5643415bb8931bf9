"""What every single-shot detector here shares: letterbox in, one network call, decode, NMS, back out.

A :class:`YoloDetector` is composed of parts passed in (as torchvision's ``GeneralizedRCNN``):

* ``net(canvas: Tensor[N, 3, S, S] in [0, 1])``: the network, normalisation included.  In eval
  mode it returns ``Tensor[N, 4 + C, A]``: for each of ``A`` predictions (grid cells x boxes,
  anchors x levels, or points) a box ``cx, cy, w, h`` in canvas pixels and ``C`` class scores in
  ``[0, 1]`` (the score NMS ranks: YOLOv1's class probability x confidence, v3's objectness x
  class sigmoid, an anchor-free head's class sigmoid).  This is the layout of ultralytics'
  YOLOv8 / YOLO11 heads, so ours and theirs share the post-processing and the export graph
  (:mod:`detect.export.yolo`).  In training mode ``net`` returns whatever ``criterion`` takes.
* ``criterion(raw, targets) -> dict[str, Tensor]``: the training losses (``loss_*``) from the
  training-mode output and the targets on the canvas (``boxes`` xyxy canvas pixels, ``labels``
  0-based); ``None`` for a network trained elsewhere (the ultralytics peers).

Pre-processing: :class:`detect.data.transforms.Letterbox` to ``imgsz x imgsz`` (longer side to
``imgsz``, centred on a ``114 / 255`` canvas).  Post-processing: best class per prediction,
``score > score_threshold``, per-class NMS, the ``max_detections`` best, boxes mapped back to the
original image's pixels and clipped (the Detector contract).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from detect.box_ops import batched_nms, box_convert, clip_boxes_to_image
from detect.data.transforms import Letterbox, unletterbox_boxes
from detect.models.postprocess import PostprocessSettings

__all__ = ["YoloDetector", "Criterion", "decoded_output"]

Criterion = Callable[[Any, list[dict[str, Tensor]]], dict[str, Tensor]]
LetterboxParams = tuple[float, float, float]  # (scale, pad_x, pad_y): canvas = image * scale + pad


def decoded_output(raw: Tensor | Sequence[Tensor]) -> Tensor:
    """The ``[N, 4 + C, A]`` tensor of an eval-mode ``net`` output (ultralytics returns ``(y, x)``)."""
    return raw[0] if isinstance(raw, (tuple, list)) else raw


class YoloDetector(nn.Module):
    """``model(images: list[Tensor[3,H,W]] in [0,1], targets=None)`` (see the module docstring).

    Eval mode: one ``{"boxes", "scores", "labels"}`` per image, boxes xyxy in the image's pixels.
    Training mode: ``criterion``'s ``dict`` of ``loss_*`` tensors.

    Args:
        net: the network (see the module docstring).
        imgsz: side of the square letterbox canvas, a multiple of the network's largest stride.
        num_classes: classes predicted (``C``).
        criterion: the training losses, or ``None`` (inference only).
        score_threshold: class scores at or below it are dropped before NMS.
        nms_threshold: IoU above which the per-class NMS suppresses a box.
        max_detections: detections kept an image.
        config: the builder's settings, recorded in exports (``variant`` names the model).
    """

    def __init__(self, net: nn.Module, imgsz: int, num_classes: int, criterion: Criterion | None = None,
                 score_threshold: float = 0.001, nms_threshold: float = 0.7, max_detections: int = 300,
                 config: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.net = net
        self.criterion = criterion
        self.imgsz = int(imgsz)
        self.num_classes = int(num_classes)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.max_detections = int(max_detections)
        self.letterbox = Letterbox(self.imgsz)
        self.config = dict(config or {})

    # -- the Detector contract's post-processing settings (detect.models.postprocess)
    def configure_postprocess(self, score_threshold: float | None = None, nms_threshold: float | None = None,
                              max_detections: int | None = None) -> None:
        if score_threshold is not None:
            self.score_threshold = float(score_threshold)
        if nms_threshold is not None:
            self.nms_threshold = float(nms_threshold)
        if max_detections is not None:
            self.max_detections = int(max_detections)

    def postprocess_settings(self) -> PostprocessSettings:
        return PostprocessSettings(self.score_threshold, self.nms_threshold, self.max_detections)

    # -- pre- and post-processing
    def preprocess(self, images: Sequence[Tensor], targets: Sequence[Mapping[str, Tensor]] | None = None
                   ) -> tuple[Tensor, list[LetterboxParams], list[dict[str, Tensor]]]:
        """Letterbox each image (and its target's boxes) onto an ``imgsz`` canvas.

        Returns ``Tensor[N, 3, imgsz, imgsz]``, ``(scale, pad_x, pad_y)`` per image, and the targets
        with boxes in canvas pixels (``[]`` without targets).
        """
        canvases, params, moved = [], [], []
        for i, image in enumerate(images):
            target = dict(targets[i]) if targets is not None else {
                "boxes": torch.zeros(0, 4, device=image.device), "labels": torch.zeros(0, dtype=torch.int64)}
            canvas, target = self.letterbox(image, target)
            canvases.append(canvas)
            params.append(target.pop("letterbox"))
            moved.append(target)
        return torch.stack(canvases), params, moved if targets is not None else []

    def postprocess(self, raw: Tensor, params: Sequence[LetterboxParams],
                    sizes: Sequence[tuple[int, int]]) -> list[dict[str, Tensor]]:
        """``raw``: ``Tensor[N, 4 + C, A]`` (cxcywh canvas pixels, class scores) -> detections per image."""
        results = []
        for pred, (scale, pad_x, pad_y), size in zip(raw, params, sizes):
            scores, labels = pred[4:].max(dim=0)
            keep = scores > self.score_threshold
            boxes = box_convert(pred[:4, keep].T, "cxcywh", "xyxy")
            scores, labels = scores[keep], labels[keep]
            kept = batched_nms(boxes, scores, labels, self.nms_threshold)[: self.max_detections]
            boxes = clip_boxes_to_image(unletterbox_boxes(boxes[kept], scale, pad_x, pad_y), size)
            results.append({"boxes": boxes, "scores": scores[kept], "labels": labels[kept]})
        return results

    def forward(self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None):
        if self.training:
            return self._losses(images, targets)
        batch, params, _ = self.preprocess(images)
        raw = decoded_output(self.net(batch.to(self._device())))
        return self.postprocess(raw.float(), params, [tuple(im.shape[-2:]) for im in images])

    def _losses(self, images: list[Tensor], targets: list[dict[str, Tensor]] | None) -> dict[str, Tensor]:
        if self.criterion is None:
            raise NotImplementedError(f"{type(self).__name__} has no training losses here; it runs for inference")
        if targets is None:
            raise ValueError("training mode needs targets: one {'boxes', 'labels'} dict per image")
        batch, _, canvas_targets = self.preprocess(images, targets)
        return self.criterion(self.net(batch), canvas_targets)

    def _device(self) -> torch.device:
        return next(self.parameters()).device
