"""ultralytics YOLOv8 / YOLO11 behind the project's Detector contract (a peer, used as a library).

The wrapped network is ultralytics' own ``DetectionModel`` built from its ``*.yaml`` (no download)
or loaded from a local ``.pt`` file. Pre- and post-processing are the project's: letterbox to a
square ``imgsz`` canvas, then per-class NMS over the decoded head output.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
from torch import Tensor, nn

from classify.base.paths import require_file
from detect.box_ops import batched_nms, box_convert, clip_boxes_to_image
from detect.data.transforms import Letterbox, unletterbox_boxes
from detect.models.peers import COCO_NUM_CLASSES
from detect.models.postprocess import PostprocessSettings
from detect.models.registry import register_detector
from detect.offline import disable_ultralytics_sync


class UltralyticsDetector(nn.Module):
    """``model(images: list[Tensor[3,H,W]] in [0,1]) -> list[{"boxes", "scores", "labels"}]``.

    Boxes come back in xyxy pixels of each original image; labels are 0-based.

    Args:
        net: an ultralytics ``DetectionModel``.
        imgsz: side of the square letterbox canvas (a multiple of the model's largest stride).
        score_threshold: minimum class score kept before NMS (ultralytics' ``conf``).
        nms_threshold: IoU threshold of the per-class NMS (ultralytics' ``iou``).
        max_detections: detections kept per image (ultralytics' ``max_det``).
    """

    def __init__(self, net: nn.Module, imgsz: int = 640, score_threshold: float = 0.001,
                 nms_threshold: float = 0.7, max_detections: int = 300) -> None:
        super().__init__()
        stride = int(net.stride.max())
        if imgsz % stride:
            raise ValueError(f"imgsz must be a multiple of the model stride {stride}, got {imgsz}")
        self.net = net
        self.imgsz = imgsz
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.max_detections = max_detections
        self.letterbox = Letterbox(imgsz)

    @property
    def class_names(self) -> list[str]:
        names = self.net.names
        return [names[i] for i in range(len(names))]

    @classmethod
    def from_config(cls, config: str = "yolov8n.yaml", num_classes: int = 80, **kwargs: object) -> UltralyticsDetector:
        """Build an untrained model from an ultralytics model YAML (e.g. ``yolo11n.yaml``)."""
        from ultralytics.nn.tasks import DetectionModel

        disable_ultralytics_sync()
        net = DetectionModel(config, nc=num_classes, verbose=False)
        net.names = {i: str(i) for i in range(num_classes)}
        return cls(net, **kwargs)

    @classmethod
    def from_weights(cls, path: str | Path, **kwargs: object) -> UltralyticsDetector:
        """Load a trained ultralytics ``.pt`` from a local file (never downloads)."""
        path = Path(path)
        require_file(path, "ultralytics weights (nothing is downloaded)")
        from ultralytics.nn.tasks import load_checkpoint

        disable_ultralytics_sync()
        net, _ = load_checkpoint(str(path), device="cpu")
        return cls(net.float(), **kwargs)

    def configure_postprocess(self, score_threshold: float | None = None, nms_threshold: float | None = None,
                              max_detections: int | None = None) -> None:
        """The Detector contract's post-processing settings (:mod:`detect.models.postprocess`)."""
        if score_threshold is not None:
            self.score_threshold = float(score_threshold)
        if nms_threshold is not None:
            self.nms_threshold = float(nms_threshold)
        if max_detections is not None:
            self.max_detections = int(max_detections)

    def postprocess_settings(self) -> PostprocessSettings:
        return PostprocessSettings(self.score_threshold, self.nms_threshold, self.max_detections)

    def fuse(self) -> UltralyticsDetector:
        """Fold BatchNorm into the convolutions for inference, as ultralytics' predictor does."""
        self.net = self.net.fuse(verbose=False)
        return self

    def preprocess(self, images: list[Tensor]) -> tuple[Tensor, list[tuple[float, float, float]]]:
        """Letterbox each image; returns ``Tensor[N,3,imgsz,imgsz]`` and ``(scale, pad_x, pad_y)`` each."""
        empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
        canvases, params = [], []
        for image in images:
            canvas, target = self.letterbox(image, dict(empty))
            canvases.append(canvas)
            params.append(target["letterbox"])
        return torch.stack(canvases), params

    def postprocess(self, raw: Tensor, params: list[tuple[float, float, float]],
                    sizes: list[tuple[int, int]]) -> list[dict[str, Tensor]]:
        """``raw``: ``Tensor[N, 4 + C, A]`` (cxcywh canvas pixels, class probabilities)."""
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

    def forward(self, images: list[Tensor], targets: list[dict] | None = None) -> list[dict[str, Tensor]]:
        if self.training or targets is not None:
            raise NotImplementedError("train ultralytics models with ultralytics' own trainer; this wrapper is for inference")
        batch, params = self.preprocess(images)
        raw = self.net(batch.to(next(self.net.parameters()).device))
        raw = raw[0] if isinstance(raw, (tuple, list)) else raw
        return self.postprocess(raw.float(), params, [tuple(im.shape[-2:]) for im in images])


def _ultralytics(config: str, num_classes: int = COCO_NUM_CLASSES, weights: str | Path | None = None,
                image_size: int | None = None, **kwargs: object) -> nn.Module:
    """An ultralytics model; ``image_size`` is its letterbox canvas (``imgsz``)."""
    if image_size is not None:
        kwargs["imgsz"] = image_size
    if weights is not None:
        return UltralyticsDetector.from_weights(weights, **kwargs)
    return UltralyticsDetector.from_config(config, num_classes=num_classes, **kwargs)


# registry name -> (ultralytics model YAML, backbone shown in tables)
ULTRALYTICS_PEERS = {
    "yolov8n": ("yolov8n.yaml", "yolov8-csp"),
    "yolov8s": ("yolov8s.yaml", "yolov8-csp"),
    "yolo11n": ("yolo11n.yaml", "yolo11-csp"),
    "yolo11s": ("yolo11s.yaml", "yolo11-csp"),
}

for name, (config, backbone) in ULTRALYTICS_PEERS.items():
    register_detector(name, family="yolo", backbone=backbone, peer=True, trains=False)(partial(_ultralytics, config))
