"""An anchor-free YOLO (YOLOv8-style, written from the papers) on any backbone of the ``classify`` zoo.

    >>> from detect.models.registry import get_detector
    >>> model = get_detector("yolo_af", num_classes=10, image_size=320, backbone="resnet18", width=64)

The network (:class:`AnchorFreeNet`), inside a :class:`~detect.models.yolo.base.YoloDetector`:

* the backbone's deepest map at strides 8, 16 and 32 (:func:`detect.models.backbone.build_taps`);
* a PAN neck (Liu et al. 2018, PANet; :class:`PanNeck`): 1x1 lateral convolutions to ``width * 2**i``
  channels at level ``i``, a top-down path (nearest 2x upsampling, concatenation, a CSP block --
  Wang et al. 2020, CSPNet) then a bottom-up path (stride-2 3x3 convolution, concatenation, a CSP
  block); SiLU activations;
* a decoupled head per level (Ge et al. 2021, YOLOX; Feng et al. 2021, TOOD; :class:`DecoupledHead`):
  two 3x3 conv + BN + SiLU branches, one for the box and one for the classes;
* anchor-free: one prediction a feature-map point, at ``(cell + 0.5) * stride``; the box is the
  point's distances (left, top, right, bottom) to its sides, each a discrete distribution over
  ``reg_max`` bins of one stride (Li et al. 2020, Generalized Focal Loss); the decoded distance is
  the distribution's expectation times the stride; class logits -> sigmoid scores.  The class
  biases start at ``-log((1 - p) / p)``, ``p = prior_prob`` (Lin et al. 2017, RetinaNet), so every
  score starts near ``p`` and the many negatives do not swamp the first steps.

Eval mode returns ``Tensor[N, 4 + C, A]`` (cxcywh canvas pixels, then class sigmoids); training
mode a :class:`~detect.models.yolo.modern_loss.HeadOutput` for :class:`AnchorFreeLoss`
(task-aligned assignment, BCE + CIoU + DFL; :mod:`detect.models.yolo.modern_loss`).
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
from detect.models.yolo.layers import ConvBnAct, InputNormalize, cell_grid
from detect.models.yolo.modern_loss import AnchorFreeLoss, HeadOutput

__all__ = ["AnchorFreeNet", "CspBlock", "DecoupledHead", "PanNeck", "anchor_points", "dfl_decode",
           "distances_to_boxes", "yolo_af"]

STRIDES = (8, 16, 32)
NAME = "yolo_af"


# -- building blocks ----------------------------------------------------------------------------
class Bottleneck(nn.Module):
    """``x + conv3x3(conv3x3(x))`` at ``channels`` channels (a residual unit)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvBnAct(channels, channels, 3), ConvBnAct(channels, channels, 3))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class CspBlock(nn.Module):
    """Cross-stage partial block (Wang et al. 2020, CSPNet): two 1x1 halves of ``out_channels // 2``,
    one through ``depth`` residual units, the other bypassing them, concatenated and fused by a 1x1
    convolution.  ``Tensor[N, in_channels, H, W] -> Tensor[N, out_channels, H, W]``."""

    def __init__(self, in_channels: int, out_channels: int, depth: int = 1) -> None:
        super().__init__()
        hidden = out_channels // 2
        self.main = ConvBnAct(in_channels, hidden, 1)
        self.bypass = ConvBnAct(in_channels, hidden, 1)
        self.blocks = nn.Sequential(*(Bottleneck(hidden) for _ in range(depth)))
        self.fuse = ConvBnAct(2 * hidden, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fuse(torch.cat((self.blocks(self.main(x)), self.bypass(x)), dim=1))


class PanNeck(nn.Module):
    """PANet's neck: a top-down (FPN) path, then a bottom-up path with stride-2 convolutions.

    ``forward(maps)``: one ``Tensor[N, in_channels[i], H / s_i, W / s_i]`` a level, strides doubling
    from level to level -> one ``Tensor[N, widths[i], H / s_i, W / s_i]`` a level.
    """

    def __init__(self, in_channels: Sequence[int], widths: Sequence[int], depth: int = 1) -> None:
        super().__init__()
        assert len(in_channels) == len(widths) >= 2, "one width a level, two levels at least"
        levels = range(len(widths) - 1)
        self.lateral = nn.ModuleList(ConvBnAct(c, w, 1) for c, w in zip(in_channels, widths))
        self.top_down = nn.ModuleList(CspBlock(widths[i + 1] + widths[i], widths[i], depth) for i in levels)
        self.down = nn.ModuleList(ConvBnAct(widths[i], widths[i], 3, 2) for i in levels)
        self.bottom_up = nn.ModuleList(CspBlock(widths[i] + widths[i + 1], widths[i + 1], depth) for i in levels)

    def forward(self, maps: Sequence[Tensor]) -> list[Tensor]:
        lateral = [conv(m) for conv, m in zip(self.lateral, maps)]
        top_down = list(lateral)
        for i in reversed(range(len(lateral) - 1)):
            upsampled = F.interpolate(top_down[i + 1], scale_factor=2.0, mode="nearest")
            top_down[i] = self.top_down[i](torch.cat((upsampled, lateral[i]), dim=1))
        out = [top_down[0]]
        for i in range(len(lateral) - 1):
            out.append(self.bottom_up[i](torch.cat((self.down[i](out[i]), top_down[i + 1]), dim=1)))
        return out


class DecoupledHead(nn.Module):
    """One box branch and one class branch a level (two 3x3 conv + BN + SiLU of ``width`` channels
    each, then a 1x1 prediction convolution).

    ``forward(maps)`` -> ``(box_logits: float[N, 4, reg_max, A], cls_logits: float[N, C, A],
    sizes: [(H_l, W_l)])``, the ``A`` points level by level, row-major within a level.
    """

    def __init__(self, in_channels: Sequence[int], num_classes: int, reg_max: int, width: int,
                 prior_prob: float = 0.01) -> None:
        super().__init__()
        self.num_classes, self.reg_max = num_classes, reg_max
        self.box = nn.ModuleList(self._branch(c, width, 4 * reg_max) for c in in_channels)
        self.cls = nn.ModuleList(self._branch(c, width, num_classes) for c in in_channels)
        for branch in self.cls:
            nn.init.normal_(branch[-1].weight, std=0.01)
            nn.init.constant_(branch[-1].bias, -math.log((1 - prior_prob) / prior_prob))
        for branch in self.box:
            nn.init.zeros_(branch[-1].bias)

    @staticmethod
    def _branch(in_channels: int, width: int, outputs: int) -> nn.Sequential:
        return nn.Sequential(ConvBnAct(in_channels, width, 3), ConvBnAct(width, width, 3),
                             nn.Conv2d(width, outputs, 1))

    def forward(self, maps: Sequence[Tensor]) -> tuple[Tensor, Tensor, list[tuple[int, int]]]:
        boxes, classes, sizes = [], [], []
        for m, box, cls in zip(maps, self.box, self.cls):
            n, _, h, w = m.shape
            boxes.append(box(m).reshape(n, 4, self.reg_max, h * w))
            classes.append(cls(m).reshape(n, self.num_classes, h * w))
            sizes.append((h, w))
        return torch.cat(boxes, dim=3), torch.cat(classes, dim=2), sizes


# -- geometry -----------------------------------------------------------------------------------
def anchor_points(sizes: Sequence[tuple[int, int]], strides: Sequence[int], device: torch.device | None = None,
                  dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """``(points: float[A, 2], strides: float[A])``: every cell's centre ``(cell + 0.5) * stride``
    (x, y pixels) of maps of ``sizes = [(H_l, W_l)]``, level by level, row-major."""
    points, point_strides = [], []
    for (h, w), stride in zip(sizes, strides):
        points.append((cell_grid(h, w, device, dtype) + 0.5) * stride)
        point_strides.append(torch.full((h * w,), float(stride), device=device, dtype=dtype))
    return torch.cat(points), torch.cat(point_strides)


def dfl_decode(box_logits: Tensor, dim: int = -1) -> Tensor:
    """The expected bin of each distribution: ``softmax(logits) @ [0, 1, .., R - 1]`` along ``dim``
    (of size ``R = reg_max``), which is removed; in strides."""
    bins = torch.arange(box_logits.shape[dim], device=box_logits.device, dtype=box_logits.dtype)
    shape = [1] * box_logits.ndim
    shape[dim] = -1
    return (box_logits.softmax(dim=dim) * bins.reshape(shape)).sum(dim=dim)


def distances_to_boxes(points: Tensor, distances: Tensor, strides: Tensor) -> Tensor:
    """``float[..., 4]`` xyxy pixels from each point (``[..., 2]`` pixels) and its (left, top, right,
    bottom) ``distances`` (``[..., 4]``, in strides; ``strides: [...]``); the inverse of
    :func:`detect.models.yolo.modern_loss.box_to_distances`."""
    distances = distances * strides[..., None]
    return torch.cat((points - distances[..., :2], points + distances[..., 2:]), dim=-1)


# -- the network --------------------------------------------------------------------------------
class AnchorFreeNet(nn.Module):
    """``net(canvas: Tensor[N, 3, S, S] in [0, 1])``: normalise, backbone taps, PAN neck, decoupled head.

    Eval mode: ``Tensor[N, 4 + C, A]``, boxes cxcywh canvas pixels then class sigmoids.  Training
    mode: :class:`~detect.models.yolo.modern_loss.HeadOutput` (logits and decoded xyxy boxes).
    """

    def __init__(self, normalize: nn.Module, taps: BackboneTaps, neck: PanNeck, head: DecoupledHead) -> None:
        super().__init__()
        self.normalize, self.taps, self.neck, self.head = normalize, taps, neck, head
        self.strides = [f.stride for f in taps.feature_info]

    def forward(self, canvas: Tensor) -> Tensor | HeadOutput:
        maps = self.neck(list(self.taps(self.normalize(canvas)).values()))
        box_logits, cls_logits, sizes = self.head(maps)
        # the geometry in float32 under autocast too: bfloat16 rounds a 300-px coordinate to 2 px
        points, strides = anchor_points(sizes, self.strides, canvas.device)
        if self.training:
            box_logits = box_logits.permute(0, 3, 1, 2)  # [N, A, 4, R]
            boxes = distances_to_boxes(points, dfl_decode(box_logits.float()), strides)
            return HeadOutput(box_logits, cls_logits.transpose(1, 2), boxes, points, strides)
        distances = dfl_decode(box_logits.float(), dim=2) * strides  # [N, 4, A] px: left, top, right, bottom
        left_top, right_bottom = distances[:, :2], distances[:, 2:]
        centre = points.T + (right_bottom - left_top) / 2
        return torch.cat((centre, left_top + right_bottom, cls_logits.float().sigmoid()), dim=1)


# -- the builder --------------------------------------------------------------------------------
def yolo_af(num_classes: int = 80, image_size: int | None = 640, backbone: str | Backbone = "resnet18",
            width: int = 64, depth: int = 1, head_width: int | None = None, reg_max: int = 16,
            backbone_weights: str | Path | None = None, trainable_layers: int | None = None,
            frozen_bn: bool = False, prior_prob: float = 0.01, topk: int = 10, alpha: float = 1.0,
            beta: float = 6.0, box_weight: float = 7.5, cls_weight: float = 0.5, dfl_weight: float = 1.5,
            score_threshold: float = 0.001, nms_threshold: float = 0.7, max_detections: int = 300) -> YoloDetector:
    """The anchor-free YOLO (see the module docstring) as a :class:`YoloDetector`.

    Args:
        num_classes: classes predicted.
        image_size: side of the letterbox canvas, a multiple of 32 (``None``: 640).
        backbone: a zoo name (:func:`detect.models.backbone.usable_backbones`) or a built zoo model;
            it needs feature maps of stride 8, 16 and 32.
        width: neck channels at stride 8; ``2 * width`` at 16, ``4 * width`` at 32.
        depth: residual units in each CSP block of the neck.
        head_width: channels of the head's branches (``None``: ``width``).
        reg_max: bins of each side's distance distribution (one stride each: distances up to
            ``reg_max - 1`` strides).
        backbone_weights, trainable_layers, frozen_bn: as in :func:`detect.models.backbone.build_taps`.
        prior_prob: the class scores' starting value.
        topk, alpha, beta: the task-aligned assigner's (:mod:`detect.models.yolo.assign`).
        box_weight, cls_weight, dfl_weight: the gains of the CIoU, BCE and DFL losses
            (YOLOv8's published defaults: 7.5, 0.5, 1.5).
        score_threshold, nms_threshold, max_detections: the post-processing.
    """
    image_size = 640 if image_size is None else image_size
    _check_options(num_classes, image_size, width, depth, head_width, reg_max, prior_prob, topk)
    name = backbone if isinstance(backbone, str) else type(backbone).__name__
    taps = build_taps(backbone, STRIDES, weights=backbone_weights, trainable_layers=trainable_layers,
                      frozen_bn=frozen_bn)
    widths = [width * 2**i for i in range(len(STRIDES))]
    neck = PanNeck([f.channels for f in taps.feature_info], widths, depth)
    head = DecoupledHead(widths, num_classes, reg_max, head_width or width, prior_prob)
    normalize = (InputNormalize.for_backbone(backbone) if isinstance(backbone, str)
                 else InputNormalize(IMAGENET_MEAN, IMAGENET_STD))
    criterion = AnchorFreeLoss(num_classes, topk, alpha, beta, box_weight, cls_weight, dfl_weight)
    config = {"variant": NAME, "backbone": name, "width": width, "depth": depth, "head_width": head_width or width,
              "reg_max": reg_max, "strides": list(STRIDES), "prior_prob": prior_prob, "topk": topk, "alpha": alpha,
              "beta": beta, "box_weight": box_weight, "cls_weight": cls_weight, "dfl_weight": dfl_weight}
    return YoloDetector(AnchorFreeNet(normalize, taps, neck, head), image_size, num_classes, criterion,
                        score_threshold, nms_threshold, max_detections, config)


def _check_options(num_classes: int, image_size: int, width: int, depth: int, head_width: int | None,
                   reg_max: int, prior_prob: float, topk: int) -> None:
    """Raise ``ValueError`` naming the first option out of range."""
    checks = [
        ("num_classes", num_classes, isinstance(num_classes, int) and num_classes >= 1, "an integer >= 1"),
        ("image_size", image_size, isinstance(image_size, int) and image_size >= 32 and image_size % 32 == 0,
         "a positive multiple of 32 (the largest stride)"),
        ("width", width, isinstance(width, int) and width >= 8, "an integer >= 8 (neck channels at stride 8)"),
        ("depth", depth, isinstance(depth, int) and depth >= 1, "an integer >= 1"),
        ("head_width", head_width, head_width is None or (isinstance(head_width, int) and head_width >= 1),
         "None or an integer >= 1"),
        ("reg_max", reg_max, isinstance(reg_max, int) and reg_max >= 2,
         "an integer >= 2 (bins of each side's distance distribution)"),
        ("prior_prob", prior_prob, 0 < prior_prob < 1, "a probability in (0, 1)"),
        ("topk", topk, isinstance(topk, int) and topk >= 1, "an integer >= 1 (positives per ground truth)"),
    ]
    for option, value, ok, expected in checks:
        if not ok:
            raise ValueError(f"{NAME}: {option} must be {expected}, got {value!r}")


register_detector(NAME, family="yolo", backbone="resnet18-pan (backbone=NAME)")(yolo_af)
