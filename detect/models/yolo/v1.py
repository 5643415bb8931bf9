"""YOLOv1 (Redmon, Divvala, Girshick, Farhadi: "You Only Look Once: Unified, Real-Time Object
Detection", CVPR 2016) on any zoo backbone with a stride-32 feature map.

    >>> from detect.models.registry import get_detector
    >>> model = get_detector("yolov1", num_classes=10, image_size=320, backbone="resnet18")

The network (:class:`YoloV1Net`): the backbone's deepest stride-32 map
(:func:`detect.models.backbone.build_taps`) is the ``S x S`` grid; ``S = imgsz / 32`` by default
(``grid=None``).  Another ``grid`` resamples the map to ``grid x grid`` by adaptive average pooling
(``grid`` below ``imgsz / 32`` pools cells together, above it repeats map pixels), so that the
paper's 7 x 7 grid is available at any input size.  The head predicts, for each cell, ``B`` boxes
``(x, y, sqrt w, sqrt h)`` (the paper's parametrisation, :mod:`detect.models.yolo.v1_loss`), their
``B`` confidences and ``C`` class probabilities ``Pr(class | object)``, one set a cell: ``S * S *
(B * 5 + C)`` numbers, laid out per cell as ``B`` groups of ``(x, y, sqrt w, sqrt h, confidence)``
then the ``C`` class values.

* ``head="fc"`` (the paper's): two fully connected layers, LeakyReLU(0.1) and dropout(0.5) between
  them, the second predicting all ``S * S * (B * 5 + C)`` numbers from the whole image;
* ``head="conv"``: a per-cell prediction (a 3x3 ConvBnAct of ``hidden`` channels, then a 1x1
  convolution to ``B * 5 + C``), no fully connected layer: each cell sees only its neighbourhood,
  and the weights do not depend on the grid size.

Test-time scores (the paper's equation 1): ``Pr(class | object) * confidence`` for each class and
box (each clamped to ``[0, 1]``).  Eval mode returns ``Tensor[N, 4 + C, S * S * B]`` (cx, cy, w, h
canvas pixels, then the scores; prediction ``(row * S + col) * B + b``), the layout
:class:`YoloDetector` post-processes (per-class NMS at 0.5, the paper's threshold) and
:mod:`detect.export.yolo` exports.

Departures from the paper (each to make it train on a CPU in an hour, or to meet the contract):

* backbone: a zoo model (e.g. ResNet-18 pretrained on digit crops) instead of the 24-layer
  darknet; the paper's four extra 3x3 convolutions before the head are left out;
* a 1x1 ConvBnAct (LeakyReLU 0.1) reduces the map to ``reduce_channels`` before the head (the
  paper flattens 7 x 7 x 1024 into a 4096-wide layer: 205 M weights); the first fully connected
  layer is ``hidden`` wide (512 by default, not 4096).  That reduction convolution is the only
  batch norm the head has;
* outputs: linear, as the paper's last layer (no sigmoid, no softmax: the class values are
  "probabilities" because sum-squared error pulls them to one-hot targets, as in the paper and
  darknet's ``softmax=0``).  The test-time score clamps confidence and class value to ``[0, 1]``
  before multiplying them (the contract's scores lie in ``[0, 1]``; ranking above 0 is unchanged);
  the last layer's bias starts every box at its cell's centre, a quarter of the canvas side wide,
  confidences at 0 and class values at ``1 / C``;
* the input is letterboxed (``imgsz x imgsz``, aspect kept) instead of stretched to 448 x 448.

Training note: the ``"fc"`` head is slow to start.  On the digit scenes (ResNet-18 pretrained on digit
crops, 320 px, batch 8) it learnt nothing in 300 iterations with AdamW or SGD at several rates, widths
and grids: its hidden layer collapses into the leaky region (~5% of the units positive within 25
iterations) and it predicts the same boxes for every image, while the ``"conv"`` head reached val AP50
0.05 in the same 300 iterations (configs/detect/train_yolov1.yaml, whose recipe uses it).  Each fc
output cell has its own weights, learnt from the few objects whose centre falls into it (the paper
trained for 135 epochs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from classify.base.checkpoint import load_state_strict, read_torch_file, state_dict_from
from classify.models.features import Backbone
from classify.models.registry import IMAGENET_MEAN, IMAGENET_STD, get_model
from detect.models.backbone import BackboneTaps, build_taps
from detect.models.registry import register_detector
from detect.models.yolo.base import YoloDetector
from detect.models.yolo.layers import ConvBnAct, InputNormalize
from detect.models.yolo.v1_loss import LAMBDA_COORD, LAMBDA_NOOBJ, YoloV1Loss, YoloV1Output, decode_boxes

__all__ = ["STRIDE", "YoloV1Head", "YoloV1Net", "decode_output", "yolov1"]

STRIDE = 32  # the grid lies over the backbone's deepest stride-32 map
PAPER_IMGSZ = 448
HEADS = ("fc", "conv")


class YoloV1Head(nn.Module):
    """``Tensor[N, C_in, S, S]`` -> raw (pre-activation) predictions ``Tensor[N, S * S, B * 5 + C]``.

    ``kind="fc"``: 1x1 ConvBnAct to ``reduce_channels`` -> flatten -> Linear(``hidden``) ->
    LeakyReLU(0.1) -> Dropout(``dropout``) -> Linear(``S * S * (B * 5 + C)``).  ``kind="conv"``:
    1x1 ConvBnAct to ``reduce_channels`` -> 3x3 ConvBnAct to ``hidden`` -> 1x1 Conv2d to ``B * 5 + C``.
    """

    def __init__(self, in_channels: int, grid: int, boxes_per_cell: int, num_classes: int, kind: str = "fc",
                 reduce_channels: int = 128, hidden: int = 512, dropout: float = 0.5) -> None:
        super().__init__()
        per_cell = boxes_per_cell * 5 + num_classes
        self.grid, self.per_cell, self.kind = grid, per_cell, kind
        self.reduce = ConvBnAct(in_channels, reduce_channels, 1, activation="leaky")
        if kind == "fc":
            self.predict = nn.Sequential(
                nn.Flatten(), nn.Linear(reduce_channels * grid * grid, hidden), nn.LeakyReLU(0.1),
                nn.Dropout(dropout), nn.Linear(hidden, grid * grid * per_cell))
        else:
            self.predict = nn.Sequential(ConvBnAct(reduce_channels, hidden, 3, activation="leaky"),
                                         nn.Conv2d(hidden, per_cell, 1))
        self._init_last(self.predict[-1], boxes_per_cell)

    def _init_last(self, last: nn.Module, boxes_per_cell: int) -> None:
        """Small weights (std 0.01: every image starts from the same guess) and biases that start every box at
        its cell's centre, a quarter of the canvas side wide (``sqrt w = sqrt h = 0.5``), confidences at 0 (most
        predictors hold no object) and class values at ``1 / C`` (a uniform ``Pr(class | object)``)."""
        nn.init.normal_(last.weight, std=0.01)
        num_classes = self.per_cell - boxes_per_cell * 5
        start = torch.full((self.per_cell,), 1.0 / num_classes)
        start[: boxes_per_cell * 5] = torch.tensor([0.5, 0.5, 0.5, 0.5, 0.0]).repeat(boxes_per_cell)
        with torch.no_grad():
            last.bias.copy_(start.repeat(self.grid * self.grid) if self.kind == "fc" else start)

    def forward(self, x: Tensor) -> Tensor:
        out = self.predict(self.reduce(x))
        if self.kind == "fc":
            return out.reshape(x.shape[0], self.grid * self.grid, self.per_cell)
        return out.flatten(2).transpose(1, 2)  # [N, per_cell, S, S] -> [N, S * S, per_cell] row-major


class YoloV1Net(nn.Module):
    """``canvas: Tensor[N, 3, imgsz, imgsz]`` in [0, 1] -> training: :class:`YoloV1Output`; eval:
    ``Tensor[N, 4 + C, S * S * B]`` (:func:`decode_output`).

    Parts: ``normalize`` (the backbone's mean / std), ``backbone`` (its stride-32 map), an adaptive
    average pool to ``grid x grid`` when the map has another size, ``head`` (:class:`YoloV1Head`).
    """

    def __init__(self, normalize: nn.Module, backbone: BackboneTaps, head: YoloV1Head, imgsz: int, grid: int,
                 boxes_per_cell: int, num_classes: int) -> None:
        super().__init__()
        self.normalize, self.backbone, self.head = normalize, backbone, head
        self.imgsz, self.grid = imgsz, grid
        self.boxes_per_cell, self.num_classes = boxes_per_cell, num_classes

    def forward(self, canvas: Tensor) -> YoloV1Output | Tensor:
        feature = next(iter(self.backbone(self.normalize(canvas)).values()))
        if feature.shape[-2:] != (self.grid, self.grid):
            feature = F.adaptive_avg_pool2d(feature, self.grid)
        out = self.split(self.head(feature))
        return out if self.training else decode_output(out, self.grid, self.imgsz)

    def split(self, raw: Tensor) -> YoloV1Output:
        """``Tensor[N, S * S, B * 5 + C]`` (per cell: ``B x (x, y, sqrt w, sqrt h, confidence)``, then
        ``C`` class values) -> :class:`YoloV1Output`, in float32; the values are the paper's linear outputs."""
        raw = raw.float()
        n, cells, b = raw.shape[0], raw.shape[1], self.boxes_per_cell
        boxes = raw[..., : b * 5].reshape(n, cells, b, 5)
        return YoloV1Output(boxes[..., :4], boxes[..., 4], raw[..., b * 5:])


def decode_output(out: YoloV1Output, grid: int, imgsz: int) -> Tensor:
    """``out`` -> ``Tensor[N, 4 + C, P * B]``: cxcywh canvas pixels, then the scores
    ``Pr(class | object) * confidence``, both clamped to ``[0, 1]`` first (prediction ``cell * B + b``,
    cells row-major)."""
    n, cells, b, _ = out.boxes.shape
    boxes = decode_boxes(out.boxes, grid, imgsz).reshape(n, cells * b, 4)
    confidence, probs = out.confidence.clamp(0, 1), out.class_probs.clamp(0, 1)
    scores = (confidence[..., None] * probs[:, :, None, :]).reshape(n, cells * b, -1)
    return torch.cat((boxes, scores), -1).transpose(1, 2)


# -- building -----------------------------------------------------------------------------------
def yolov1(
    num_classes: int = 20,
    image_size: int | None = None,
    backbone: str | Backbone = "resnet18",
    *,
    grid: int | None = None,
    boxes_per_cell: int = 2,
    head: str = "fc",
    reduce_channels: int = 128,
    hidden: int = 512,
    dropout: float = 0.5,
    lambda_coord: float = LAMBDA_COORD,
    lambda_noobj: float = LAMBDA_NOOBJ,
    backbone_weights: str | Path | None = None,
    trainable_layers: int | None = None,
    frozen_bn: bool = False,
    weights: str | Path | None = None,
    score_threshold: float = 0.001,
    nms_threshold: float = 0.5,
    max_detections: int = 300,
) -> YoloDetector:
    """A YOLOv1 :class:`YoloDetector` (see the module docstring).

    Args:
        num_classes: classes predicted (``C``; the paper's VOC: 20).
        image_size: side of the square letterbox canvas, a multiple of 32 (``None``: the paper's 448).
        backbone: a zoo name with a stride-32 map (:func:`detect.models.backbone.usable_backbones`), or a
            built zoo :class:`Backbone` (normalised with ImageNet's mean / std).
        grid: ``S``; ``None``: ``image_size / 32``; another value resamples the stride-32 map (adaptive
            average pooling).  With ``head="fc"`` the weights fit one grid only, so a checkpoint is
            run at another ``image_size`` only with the ``grid`` it was trained with.
        boxes_per_cell: ``B`` (paper: 2).
        head: ``"fc"`` (the paper's two fully connected layers) or ``"conv"`` (per-cell 1x1 prediction).
        reduce_channels: channels of the 1x1 reduction before the head.
        hidden: width of the first fully connected layer (``"fc"``) or of the 3x3 convolution (``"conv"``).
        dropout: dropout after the first fully connected layer (paper: 0.5).
        lambda_coord, lambda_noobj: the loss weights (paper: 5 and 0.5).
        backbone_weights: a classifier checkpoint / state dict for the backbone (initial weights).
        trainable_layers: backbone stages left trainable, counted from the deepest (``None``: all).
        frozen_bn: the backbone's BatchNorm layers frozen (``FrozenBatchNorm2d``).
        weights: a detector checkpoint (``detect train``'s file or a state dict) loaded whole.
        score_threshold, nms_threshold, max_detections: post-processing (NMS at the paper's 0.5;
            scores above 0.001 kept for mAP).

    Raises:
        ValueError: ``image_size`` not a positive multiple of 32, ``grid``/``boxes_per_cell``/
            ``num_classes`` below 1, an unknown ``head``, or a backbone without a stride-32 map.
    """
    imgsz = PAPER_IMGSZ if image_size is None else image_size
    name = backbone if isinstance(backbone, str) else type(backbone).__name__
    where = f"yolov1(backbone={name!r})"
    _check_options(where, imgsz, grid, boxes_per_cell, num_classes, head)
    _check_stride(where, backbone)
    grid = imgsz // STRIDE if grid is None else grid
    taps = build_taps(backbone, (STRIDE,), weights=backbone_weights, trainable_layers=trainable_layers,
                      frozen_bn=frozen_bn)
    net = YoloV1Net(_normalize(backbone), taps,
                    YoloV1Head(taps.out_channels, grid, boxes_per_cell, num_classes, head, reduce_channels, hidden,
                               dropout),
                    imgsz, grid, boxes_per_cell, num_classes)
    config = dict(variant="yolov1", backbone=name, grid=grid, boxes_per_cell=boxes_per_cell, head=head,
                  reduce_channels=reduce_channels, hidden=hidden, dropout=dropout, lambda_coord=lambda_coord,
                  lambda_noobj=lambda_noobj, trainable_layers=trainable_layers, frozen_bn=frozen_bn)
    model = YoloDetector(net, imgsz, num_classes, YoloV1Loss(grid, imgsz, num_classes, lambda_coord, lambda_noobj),
                         score_threshold, nms_threshold, max_detections, config)
    if weights is not None:
        state = state_dict_from(read_torch_file(weights, "yolov1 weights"), str(weights))
        load_state_strict(model, state, f"{weights} ({where})")
    return model


def _check_options(where: str, imgsz: Any, grid: Any, boxes_per_cell: Any, num_classes: Any, head: Any) -> None:
    if not _positive_int(imgsz) or imgsz % STRIDE:
        raise ValueError(f"{where}: image_size must be a positive multiple of {STRIDE} (the grid lies over the "
                         f"stride-{STRIDE} map), got {imgsz!r}")
    for key, value in (("grid", grid), ("boxes_per_cell", boxes_per_cell), ("num_classes", num_classes)):
        if not (value is None and key == "grid") and not _positive_int(value):
            raise ValueError(f"{where}: {key} must be an int >= 1, got {value!r}")
    if head not in HEADS:
        raise ValueError(f"{where}: head must be one of {HEADS}, got {head!r}")


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_stride(where: str, backbone: str | Backbone) -> None:
    """Raise ``ValueError`` unless ``backbone`` declares a stride-32 map (checked on the meta device)."""
    if isinstance(backbone, str):
        with torch.device("meta"):
            info = get_model(backbone, num_classes=0).feature_info
    else:
        info = backbone.feature_info
    if not any(f.stride == STRIDE for f in info):
        found = ", ".join(f"{f.name}/{f.stride}" for f in info)
        raise ValueError(f"{where}: YOLOv1's grid lies over a stride-{STRIDE} feature map, but the backbone's maps "
                         f"are {found} (name/stride); pick a backbone reaching stride {STRIDE}, e.g. resnet18")


def _normalize(backbone: str | Backbone) -> InputNormalize:
    if isinstance(backbone, str):
        return InputNormalize.for_backbone(backbone)
    return InputNormalize(IMAGENET_MEAN, IMAGENET_STD)


register_detector("yolov1", family="yolo", backbone="resnet18 (backbone=NAME)")(yolov1)
