"""ultralytics YOLOv8 / YOLO11 behind the project's Detector contract (a peer, used as a library).

The wrapped network is ultralytics' own ``DetectionModel`` built from its ``*.yaml`` (no download)
or loaded from a local ``.pt`` file. Pre- and post-processing are the project's, shared with its own
YOLO detectors (:class:`detect.models.yolo.base.YoloDetector`): letterbox to a square ``imgsz``
canvas, then per-class NMS over the decoded head output.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from classify.base.paths import require_file
from detect.models.peers import COCO_NUM_CLASSES
from detect.models.registry import register_detector
from detect.models.yolo.base import YoloDetector
from detect.offline import disable_ultralytics_sync


class UltralyticsDetector(YoloDetector):
    """An ultralytics ``DetectionModel`` as a :class:`~detect.models.yolo.base.YoloDetector`.

    ``model(images: list[Tensor[3,H,W]] in [0,1]) -> list[{"boxes", "scores", "labels"}]``, boxes
    in xyxy pixels of each original image, labels 0-based.  Inference only here: ultralytics'
    own trainer trains it (``detect train --detector yolov8n``, :mod:`detect.engine.ultralytics_train`).

    Args:
        net: an ultralytics ``DetectionModel``.
        imgsz: side of the square letterbox canvas (a multiple of the model's largest stride).
        score_threshold: minimum class score kept before NMS (ultralytics' ``conf``).
        nms_threshold: IoU threshold of the per-class NMS (ultralytics' ``iou``).
        max_detections: detections kept per image (ultralytics' ``max_det``).
    """

    def __init__(self, net: nn.Module, imgsz: int = 640, score_threshold: float = 0.001,
                 nms_threshold: float = 0.7, max_detections: int = 300) -> None:
        stride = int(net.stride.max())
        if imgsz % stride:
            raise ValueError(f"imgsz must be a multiple of the model stride {stride}, got {imgsz}")
        yaml = getattr(net, "yaml", None) or {}
        super().__init__(net, imgsz, int(yaml.get("nc", len(net.names))), None, score_threshold, nms_threshold,
                         max_detections, {"imgsz": imgsz, "yaml_file": yaml.get("yaml_file"),
                                          "scale": yaml.get("scale")})

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
        return cls(read_ultralytics_weights(path)[0], **kwargs)

    def fuse(self) -> UltralyticsDetector:
        """Fold BatchNorm into the convolutions for inference, as ultralytics' predictor does."""
        self.net = self.net.fuse(verbose=False)
        return self

    def forward(self, images: list[Tensor], targets: list[dict] | None = None) -> list[dict[str, Tensor]]:
        if self.training or targets is not None:
            raise NotImplementedError("train ultralytics models with 'detect train --detector NAME' (it runs "
                                      "ultralytics' own trainer); this wrapper's forward is for inference")
        return super().forward(images)


def read_ultralytics_weights(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The float32 ``DetectionModel`` of a local ultralytics ``.pt`` and the file's other entries
    (``train_metrics``, ``train_args``...: plain values as ultralytics saved them).

    Raises:
        FileNotFoundError: no file at ``path`` (nothing is downloaded).
    """
    path = Path(path)
    require_file(path, "ultralytics weights (nothing is downloaded)")
    from ultralytics.nn.tasks import load_checkpoint

    disable_ultralytics_sync()
    net, ckpt = load_checkpoint(str(path), device="cpu")
    info = {k: v for k, v in (ckpt or {}).items() if k in ("train_metrics", "train_args", "epoch", "version")}
    return net.float(), info


def model_yaml(name: str) -> str:
    """The ultralytics model YAML of registry name ``name`` (``yolov8n`` -> ``yolov8n.yaml``)."""
    if name not in ULTRALYTICS_PEERS:
        raise ValueError(f"{name!r} is not an ultralytics model; expected one of {sorted(ULTRALYTICS_PEERS)}")
    return ULTRALYTICS_PEERS[name][0]


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
    register_detector(name, family="yolo", backbone=backbone, peer=True)(partial(_ultralytics, config))
