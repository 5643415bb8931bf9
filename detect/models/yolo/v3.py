"""YOLOv3 (Redmon & Farhadi 2018) on any backbone of the ``classify`` zoo.

    >>> from detect.models.registry import get_detector
    >>> model = get_detector("yolov3", num_classes=10, image_size=320, backbone="resnet18")

Network (:class:`YoloV3Net`, normalisation included, ``Tensor[N, 3, S, S]`` in ``[0, 1]`` in):

* backbone: the zoo model's deepest maps of stride 8, 16 and 32
  (:func:`detect.models.backbone.build_taps`; ``C3, C4, C5``);
* neck, top-down as in YOLOv3: on ``C5`` a *conv set* (five ``ConvBnAct``: 1x1, 3x3, 1x1, 3x3,
  1x1, the 3x3 ones twice as wide); its output goes to the stride-32 prediction layer and, through
  a 1x1 conv and a 2x nearest upsampling, is concatenated with ``C4``; a conv set on that feeds
  the stride-16 prediction layer and, the same way, the stride-8 one with ``C3``.  Every
  convolution has batch norm and LeakyReLU(0.1) (``ConvBnAct``).  Neck widths: ``width`` x the
  tapped map's channels (from ``feature_info``), rounded to a multiple of 8, at least 16
  (ResNet-18, ``width=0.5``: 64 / 128 / 256 at strides 8 / 16 / 32);
* prediction layers: a 3x3 ``ConvBnAct`` (twice the neck width) and a 1x1 convolution (with
  bias) to ``3 x (5 + C)`` channels: for each of the level's 3 anchors ``t_x, t_y, t_w, t_h``,
  objectness, ``C`` class logits.  Biases start at class probability ``1 / C`` and at an
  objectness of about :data:`EXPECTED_OBJECTS` an image spread evenly over the levels' predictions
  (``8 / (3 levels x 3 anchors x cells)``, the idea of YOLOv5's bias init): a start at 0.01 gave an
  initial objectness loss of ~60 an image at 320 px, which AdamW's ~lr-sized steps take hundreds of
  iterations to bring down.

Decoding (:func:`decode_boxes`): centre ``(sigmoid(t_xy) + cell) * stride``, size
``anchor * exp(t_wh)`` (``t_wh`` clipped at ``log(1000 / 16)``, torchvision's limit); score of
class ``c``: ``sigmoid(objectness) * sigmoid(class c)`` (independent logistic classifiers).
Eval mode returns ``Tensor[N, 4 + C, A]`` (``cx, cy, w, h`` canvas pixels, then the ``C``
scores; ``A = 3 x sum of H x W`` over the levels, finest first), the contract of
:class:`~detect.models.yolo.base.YoloDetector`, which letterboxes, runs NMS and exports it.
Training mode returns one :class:`~detect.models.yolo.v3_loss.LevelOutput` a level for
:class:`~detect.models.yolo.v3_loss.YoloV3Loss`.

Anchors: nine ``(w, h)`` in canvas pixels, sorted by area, three a level from stride 8 up; default
the paper's COCO anchors x ``image_size / 416``; ``detect anchors DATASET -k 9`` fits them to a
dataset (:mod:`detect.models.yolo.kmeans`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from classify.models.features import Backbone
from classify.models.registry import IMAGENET_MEAN, IMAGENET_STD
from detect.models.backbone import BackboneTaps, build_taps
from detect.models.registry import register_detector
from detect.models.yolo.base import YoloDetector
from detect.models.yolo.kmeans import as_sizes, paper_anchors
from detect.models.yolo.layers import ConvBnAct, InputNormalize, cell_grid
from detect.models.yolo.v3_loss import BOX_LOSSES, LevelOutput, YoloV3Loss

__all__ = ["STRIDES", "YoloV3Net", "decode_boxes", "decode_level", "neck_width", "yolov3"]

STRIDES = (8, 16, 32)
ANCHORS_PER_LEVEL = 3
WH_CLIP = math.log(1000.0 / 16)
EXPECTED_OBJECTS = 8.0  # objects an image assumed by the objectness bias init
ACTIVATION = "leaky"


def neck_width(channels: int, width: float) -> int:
    """``width x channels`` rounded to a multiple of 8, at least 16."""
    return max(16, round(width * channels / 8) * 8)


def conv_set(in_channels: int, channels: int) -> nn.Sequential:
    """YOLOv3's five-layer conv set: 1x1 ``channels``, 3x3 ``2 channels``, 1x1, 3x3, 1x1 ``channels``."""
    return nn.Sequential(
        ConvBnAct(in_channels, channels, 1, activation=ACTIVATION),
        ConvBnAct(channels, 2 * channels, 3, activation=ACTIVATION),
        ConvBnAct(2 * channels, channels, 1, activation=ACTIVATION),
        ConvBnAct(channels, 2 * channels, 3, activation=ACTIVATION),
        ConvBnAct(2 * channels, channels, 1, activation=ACTIVATION),
    )


class PredictionLayer(nn.Sequential):
    """3x3 ``ConvBnAct`` then a 1x1 convolution to ``anchors x (5 + num_classes)`` channels."""

    def __init__(self, channels: int, num_classes: int, objectness_prior: float,
                 anchors: int = ANCHORS_PER_LEVEL) -> None:
        out = nn.Conv2d(2 * channels, anchors * (5 + num_classes), 1)
        with torch.no_grad():
            bias = out.bias.view(anchors, 5 + num_classes)
            bias.zero_()
            bias[:, 4] = math.log(objectness_prior / (1 - objectness_prior))
            bias[:, 5:] = -math.log(max(num_classes - 1, 1))  # sigmoid = 1 / num_classes
        super().__init__(ConvBnAct(channels, 2 * channels, 3, activation=ACTIVATION), out)


def decode_boxes(t: Tensor, cells: Tensor, anchors: Tensor, stride: float) -> Tensor:
    """``t: Tensor[..., 4]`` (``t_x, t_y, t_w, t_h``) -> boxes ``Tensor[..., 4]`` ``cx, cy, w, h`` pixels.

    ``cells``: ``(x, y)`` cell indices, ``anchors``: ``(w, h)`` pixels, both broadcasting to
    ``[..., 2]``; ``stride``: pixels a cell.
    """
    xy = (t[..., :2].sigmoid() + cells) * stride
    wh = anchors * t[..., 2:4].clamp(max=WH_CLIP).exp()
    return torch.cat((xy, wh), dim=-1)


def level_boxes(raw: Tensor, anchors: Tensor, stride: int) -> Tensor:
    """Decoded boxes of one level: ``raw: Tensor[N, A, H, W, 5 + C]``, ``anchors: Tensor[A, 2]`` ->
    ``Tensor[N, A, H, W, 4]`` ``cx, cy, w, h`` pixels."""
    _, a, h, w, _ = raw.shape
    cells = cell_grid(h, w, device=raw.device, dtype=raw.dtype).reshape(1, 1, h, w, 2)
    return decode_boxes(raw[..., :4], cells, anchors.to(raw.dtype).reshape(1, a, 1, 1, 2), stride)


def decode_level(raw: Tensor, boxes: Tensor) -> Tensor:
    """One level's ``Tensor[N, 4 + C, A * H * W]``: boxes then ``sigmoid(obj) * sigmoid(class)``."""
    scores = raw[..., 4:5].sigmoid() * raw[..., 5:].sigmoid()
    out = torch.cat((boxes, scores), dim=-1)
    return out.reshape(out.shape[0], -1, out.shape[-1]).transpose(1, 2)


class YoloV3Net(nn.Module):
    """Backbone taps (strides 8/16/32) + YOLOv3's top-down neck + three prediction layers.

    ``image_size`` (the canvas side) only sets the objectness bias init.

    ``forward(canvas: Tensor[N, 3, S, S] in [0, 1])``: eval mode ``Tensor[N, 4 + C, A]``; training
    mode a list of three :class:`LevelOutput` (stride 8 first).  ``anchors``: ``Tensor[9, 2]``
    ``(w, h)`` pixels sorted by area (kept as a non-persistent buffer: they come from the config).
    """

    def __init__(self, taps: BackboneTaps, normalize: nn.Module, num_classes: int, anchors: Tensor,
                 width: float, image_size: int) -> None:
        super().__init__()
        info = taps.feature_info
        assert [f.stride for f in info] == list(STRIDES), "taps must be the stride 8, 16 and 32 maps"
        self.normalize = normalize
        self.backbone = taps
        self.strides = tuple(f.stride for f in info)
        self.num_classes = int(num_classes)
        widths = [neck_width(f.channels, width) for f in info]
        self.conv_sets = nn.ModuleList([
            conv_set(info[0].channels + widths[0], widths[0]),
            conv_set(info[1].channels + widths[1], widths[1]),
            conv_set(info[2].channels, widths[2]),
        ])
        self.laterals = nn.ModuleList([ConvBnAct(widths[1], widths[0], 1, activation=ACTIVATION),
                                       ConvBnAct(widths[2], widths[1], 1, activation=ACTIVATION)])
        priors = [min(0.1, EXPECTED_OBJECTS / (len(info) * ANCHORS_PER_LEVEL * math.ceil(image_size / f.stride) ** 2))
                  for f in info]
        self.predictions = nn.ModuleList([PredictionLayer(c, num_classes, p) for c, p in zip(widths, priors)])
        self.register_buffer("anchors", anchors.to(torch.float32).reshape(len(info), ANCHORS_PER_LEVEL, 2),
                             persistent=False)

    def raw_outputs(self, canvas: Tensor) -> list[Tensor]:
        """Per level (stride 8 first) ``Tensor[N, 3, H, W, 5 + C]``."""
        c3, c4, c5 = self.backbone(self.normalize(canvas)).values()
        x5 = self.conv_sets[2](c5)
        x4 = self.conv_sets[1](torch.cat((self._up(self.laterals[1](x5), c4), c4), dim=1))
        x3 = self.conv_sets[0](torch.cat((self._up(self.laterals[0](x4), c3), c3), dim=1))
        return [self._split(head(x)) for head, x in zip(self.predictions, (x3, x4, x5))]

    @staticmethod
    def _up(x: Tensor, like: Tensor) -> Tensor:
        """Nearest upsampling to ``like``'s map size (2x for padded backbones)."""
        return F.interpolate(x, size=like.shape[-2:], mode="nearest")

    def _split(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        return x.reshape(n, ANCHORS_PER_LEVEL, 5 + self.num_classes, h, w).permute(0, 1, 3, 4, 2)

    def forward(self, canvas: Tensor) -> Tensor | list[LevelOutput]:
        raws = [r.float() for r in self.raw_outputs(canvas)]  # decoded in float32 under bf16 autocast too
        boxes = [level_boxes(r, a, s) for r, a, s in zip(raws, self.anchors, self.strides)]
        if self.training:
            return [LevelOutput(r, b, s) for r, b, s in zip(raws, boxes, self.strides)]
        return torch.cat([decode_level(r, b) for r, b in zip(raws, boxes)], dim=2)


# -- builder ------------------------------------------------------------------------------------
def check_anchors(anchors: object, where: str = "yolov3") -> Tensor:
    """``anchors`` as ``Tensor[9, 2]`` float32: nine positive ``(w, h)`` pixels sorted by area."""
    count = len(STRIDES) * ANCHORS_PER_LEVEL
    try:
        sizes = as_sizes(anchors, f"{where}: anchors")
    except (TypeError, RuntimeError) as exc:
        raise ValueError(f"{where}: anchors must be {count} (w, h) pairs in pixels, got {anchors!r}") from exc
    if len(sizes) != count:
        raise ValueError(f"{where}: anchors must be {count} (w, h) pairs in pixels ({ANCHORS_PER_LEVEL} a level at "
                         f"strides {list(STRIDES)}), got {len(sizes)} pairs")
    areas = sizes[:, 0] * sizes[:, 1]
    if bool((areas[1:] < areas[:-1]).any()):
        raise ValueError(f"{where}: anchors must be sorted by area (w x h), small to large, got {sizes.tolist()}")
    return sizes.to(torch.float32)


def yolov3(num_classes: int = 80, image_size: int | None = 416, backbone: str | Backbone = "resnet18",
           anchors: Sequence[Sequence[float]] | None = None, width: float = 0.5,
           backbone_weights: str | Path | None = None, trainable_layers: int | None = None, frozen_bn: bool = False,
           ignore_threshold: float = 0.5, box_loss: str = "sse", score_threshold: float = 0.001,
           nms_threshold: float = 0.5, max_detections: int = 300) -> YoloDetector:
    """YOLOv3 on a zoo backbone (see the module docstring).

    Args:
        num_classes: classes predicted.
        image_size: side of the square letterbox canvas, a multiple of 32 (``None``: 416).
        backbone: a zoo name (see ``classify list``) with stride 8, 16 and 32 maps, or a built
            :class:`Backbone` (normalised with ImageNet's mean and std).
        anchors: nine ``(w, h)`` canvas pixels sorted by area, 3 a level (stride 8 first);
            ``None``: the YOLOv3 paper's COCO anchors x ``image_size / 416``.
        width: neck width as a fraction of each tapped map's channels.
        backbone_weights: a ``classify`` checkpoint or state dict initialising the backbone.
        trainable_layers: backbone stages left trainable, from the deepest (``None``: all).
        frozen_bn: the backbone's batch norm frozen (running statistics kept).
        ignore_threshold: IoU above which an unassigned prediction is no negative.
        box_loss: ``"sse"`` (the paper's) or ``"giou"`` (see :mod:`detect.models.yolo.v3_loss`).
        score_threshold, nms_threshold, max_detections: post-processing.
    """
    image_size = 416 if image_size is None else image_size
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 32 or image_size % 32:
        raise ValueError(f"yolov3: image_size must be a positive multiple of 32 (the deepest stride), "
                         f"got {image_size!r}")
    if not isinstance(width, (int, float)) or width <= 0:
        raise ValueError(f"yolov3: width must be a positive fraction of the backbone's channels, got {width!r}")
    if box_loss not in BOX_LOSSES:
        raise ValueError(f"yolov3: box_loss must be one of {BOX_LOSSES}, got {box_loss!r}")
    sizes = check_anchors(paper_anchors(image_size) if anchors is None else anchors)
    taps = build_taps(backbone, STRIDES, weights=backbone_weights, trainable_layers=trainable_layers,
                      frozen_bn=frozen_bn)
    name = backbone if isinstance(backbone, str) else type(backbone).__name__
    normalize = InputNormalize.for_backbone(backbone) if isinstance(backbone, str) else InputNormalize(
        IMAGENET_MEAN, IMAGENET_STD)
    net = YoloV3Net(taps, normalize, num_classes, sizes, float(width), image_size)
    criterion = YoloV3Loss(sizes, STRIDES, num_classes, ignore_threshold, box_loss)
    config = {"variant": "yolov3", "backbone": name, "anchors": [[round(float(v), 4) for v in a] for a in sizes],
              "width": float(width), "ignore_threshold": float(ignore_threshold), "box_loss": box_loss}
    return YoloDetector(net, image_size, num_classes, criterion, score_threshold=score_threshold,
                        nms_threshold=nms_threshold, max_detections=max_detections, config=config)


register_detector("yolov3", family="yolo", backbone="resnet18-fpn (backbone=NAME)")(yolov3)
