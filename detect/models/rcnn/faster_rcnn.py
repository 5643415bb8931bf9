"""Faster R-CNN (Ren et al., 2015) on any backbone of the ``classify`` zoo, composed of torchvision's parts.

    >>> from detect.models.registry import get_detector
    >>> model = get_detector("faster_rcnn", backbone="resnet18", fpn=True, num_classes=10,
    ...                      image_size=320)

Parts (torchvision's, composed as in ``generalized_rcnn.py``): the adapted backbone
(:mod:`detect.models.backbone`: FPN over levels chosen from ``feature_info``, or one stride-16 map),
``AnchorGenerator`` (sizes from :mod:`detect.models.anchors`), ``RPNHead`` + ``RegionProposalNetwork``,
``MultiScaleRoIAlign`` over the backbone's levels (not the extra "pool" map), a box head
(``"mlp"``: ``TwoMLPHead``; ``"conv"``: torchvision v2's four 3x3 conv + BN layers and one FC),
``FastRCNNPredictor`` and ``RoIHeads``, and ``GeneralizedRCNNTransform`` (resize to
``min_size``/``max_size``, normalise with the backbone's ``mean``/``std`` from its registry entry).

Label boundary: our labels are 0-based with no background (``num_classes`` real classes);
torchvision's heads count background as 0, so :class:`FasterRCNN` adds 1 to target labels and
subtracts 1 from predicted labels; the predictor has ``num_classes + 1`` outputs.  A torchvision
COCO checkpoint (91 outputs) is therefore a ``num_classes=90`` model whose label ``k`` is
torchvision's category index ``k + 1``.

Registered names: ``faster_rcnn`` (any backbone, every option below) and the torchvision-equal
architectures ``faster_rcnn_resnet50_fpn``, ``faster_rcnn_resnet50_fpn_v2``,
``faster_rcnn_mobilenet_v3_large_fpn``, ``faster_rcnn_mobilenet_v3_large_320_fpn``
(:mod:`detect.models.rcnn.tv_variants`), which load torchvision's COCO state dicts with ``weights=PATH``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops.poolers import initLevelMapper

from classify.base.checkpoint import FORMAT as CHECKPOINT_FORMAT
from classify.base.checkpoint import load_state_strict, read_torch_file, state_dict_from
from classify.models.features import Backbone
from classify.models.registry import IMAGENET_MEAN, IMAGENET_STD, get_model_entry
from detect.box_ops import batched_nms, validate_boxes
from detect.models.anchors import anchor_generator, anchor_sizes_for, normalize_anchor_sizes
from detect.models.backbone import DetectionBackbone, build_backbone
from detect.models.postprocess import RoIHeadsPostprocess
from detect.models.rcnn.rescore import CropRescorer
from detect.models.rcnn.roi_align import ParallelMultiScaleRoIAlign
from detect.models.rcnn.tv_layout import convert_torchvision_state_dict, is_torchvision_layout
from detect.models.registry import register_detector

__all__ = ["FasterRCNN", "FasterRCNNConfig", "faster_rcnn", "merge_detections",
           "load_detector_state", "read_detector_checkpoint", "validate_targets"]

DEFAULT_NUM_CLASSES = 80  # COCO's real classes, as the torchvision peers in detect.models.peers.torchvision
C4_ANCHOR_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)  # x 8 x stride 16 = 32 .. 512 px
PRETRAINED_TRAINABLE_LAYERS = 3  # torchvision's default with a pretrained backbone
_NORMS = {None: None, "bn": nn.BatchNorm2d}
_BOX_HEADS = ("mlp", "conv")


@dataclass(frozen=True)
class FasterRCNNConfig:
    """Every option of :func:`faster_rcnn` besides the backbone, weights and class count.

    Transform: ``min_size``/``max_size`` (resize so the short side is ``min_size`` unless the long
    side would exceed ``max_size``; ``image_size=S`` sets both to ``S``), ``test_size`` (square
    input side in eval mode; ``None``: ``min_size``/``max_size`` there too), ``extra_test_sizes``
    (eval mode: also detect at each of these square sizes and merge every size's detections by
    per-class NMS at ``box_nms_thresh``, a multi-size test; ``()``: one size), ``size_divisible``
    (batch padding; ``None``: ``max(32, deepest backbone stride)``), ``image_mean``/``image_std``
    (``None``: the backbone's registry entry).  Backbone: ``levels`` (feature names; default from
    ``feature_info``), ``out_channels`` (FPN / projection width), ``fpn_norm`` (``None`` or
    ``"bn"``), ``trainable_layers`` (``None``: all when the backbone is random, 3 with
    ``backbone_weights``), ``frozen_bn`` (``None``: True iff ``backbone_weights``).  Anchors:
    ``anchor_sizes`` (per level; ``None``: 8 x stride per FPN level, 32..512 on the C4 level),
    ``aspect_ratios`` (h/w).  RPN: ``rpn_*`` as in torchvision's ``FasterRCNN`` plus
    ``rpn_conv_depth`` (3x3 convs in the RPN head).  RoI heads: ``roi_output_size``,
    ``roi_sampling_ratio``, ``roi_canonical_scale``/``roi_canonical_level`` (FPN level mapping:
    a box of side ``sqrt(w * h) = canonical_scale`` is pooled from level ``canonical_level``,
    i.e. stride ``2 ** level``; one level finer per halving), ``box_head`` (``"mlp"`` or
    ``"conv"``), ``representation_size`` (width of the box head's FC layers), and ``box_*``/``bbox_reg_weights`` as in torchvision.
    Refinement (with ``rescore_with``): ``rescore_weight`` and ``rescore_min_score`` of
    :class:`detect.models.rcnn.rescore.CropRescorer`.
    """

    min_size: int = 800
    max_size: int = 1333
    test_size: int | None = None
    extra_test_sizes: tuple[int, ...] = ()
    size_divisible: int | None = None
    image_mean: tuple[float, ...] | None = None
    image_std: tuple[float, ...] | None = None
    levels: tuple[str, ...] | None = None
    out_channels: int = 256
    fpn_norm: str | None = None
    trainable_layers: int | None = None
    frozen_bn: bool | None = None
    anchor_sizes: tuple | None = None
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    rpn_conv_depth: int = 1
    rpn_pre_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_test: int = 1000
    rpn_nms_thresh: float = 0.7
    rpn_fg_iou_thresh: float = 0.7
    rpn_bg_iou_thresh: float = 0.3
    rpn_batch_size_per_image: int = 256
    rpn_positive_fraction: float = 0.5
    rpn_score_thresh: float = 0.0
    roi_output_size: int = 7
    roi_sampling_ratio: int = 2
    roi_canonical_scale: int = 224
    roi_canonical_level: int = 4
    box_head: str = "mlp"
    representation_size: int = 1024
    box_score_thresh: float = 0.05
    box_nms_thresh: float = 0.5
    box_detections_per_img: int = 100
    box_fg_iou_thresh: float = 0.5
    box_bg_iou_thresh: float = 0.5
    box_batch_size_per_image: int = 512
    box_positive_fraction: float = 0.25
    bbox_reg_weights: tuple[float, float, float, float] | None = None
    rescore_weight: float = 0.35
    rescore_min_score: float = 0.01

    @classmethod
    def from_options(cls, options: Mapping[str, Any], where: str = "faster_rcnn") -> FasterRCNNConfig:
        """Build from keyword options; an unknown key raises ``ValueError`` naming the closest."""
        known = [f.name for f in fields(cls)]
        for key in options:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
                hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
                raise ValueError(f"{where}: unknown option {key!r}{hint} "
                                 f"(options: see detect.models.rcnn.faster_rcnn.FasterRCNNConfig)")
        config = cls(**options)
        if config.box_head not in _BOX_HEADS:
            raise ValueError(f"{where}: box_head must be one of {_BOX_HEADS}, got {config.box_head!r}")
        if config.fpn_norm not in _NORMS:
            raise ValueError(f"{where}: fpn_norm must be None or 'bn', got {config.fpn_norm!r}")
        if config.test_size is not None and config.test_size < 32:
            raise ValueError(f"{where}: test_size must be at least 32 pixels, got {config.test_size}")
        extra = config.extra_test_sizes
        if not isinstance(extra, Sequence) or not all(isinstance(v, int) and v >= 32 for v in extra):
            raise ValueError(f"{where}: extra_test_sizes must be a list of square input sides of at least "
                             f"32 pixels, got {extra!r}")
        config = replace(config, extra_test_sizes=tuple(extra))
        return config


# -- input checks -------------------------------------------------------------------------------
def validate_targets(images: Sequence[Tensor], targets: Sequence[Mapping[str, Tensor]],
                     num_classes: int) -> None:
    """Check training targets against the Detector contract; raise naming image and object.

    Each target: ``boxes`` float ``Tensor[N, 4]`` xyxy pixels with ``x1 < x2``, ``y1 < y2``
    (finite); ``labels`` int64 ``Tensor[N]`` in ``[0, num_classes)``.  ``N = 0`` (an image
    without objects) is valid.  Raises ``TypeError`` (wrong type / dtype) or ``ValueError``.
    """
    if not isinstance(targets, Sequence) or len(targets) != len(images):
        got = len(targets) if isinstance(targets, Sequence) else type(targets).__name__
        raise ValueError(f"targets: expected a list of {len(images)} dicts (one per image), got {got}")
    for i, target in enumerate(targets):
        _validate_target(i, target, num_classes)


def _validate_target(i: int, target: Mapping[str, Tensor], num_classes: int) -> None:
    where = f"targets[{i}]"
    if isinstance(target, Mapping) and "image_id" in target:
        where += f" (image_id {_scalar(target['image_id'])})"
    if not isinstance(target, Mapping) or not {"boxes", "labels"} <= set(target):
        found = sorted(target) if isinstance(target, Mapping) else type(target).__name__
        raise ValueError(f"{where}: expected a dict with 'boxes' and 'labels', got {found}")
    boxes, labels = target["boxes"], target["labels"]
    if not isinstance(boxes, Tensor) or not boxes.is_floating_point():
        raise TypeError(f"{where}: boxes must be a float Tensor[N, 4], got "
                        f"{getattr(boxes, 'dtype', type(boxes).__name__)}")
    if not isinstance(labels, Tensor) or labels.dtype != torch.int64:
        raise TypeError(f"{where}: labels must be an int64 Tensor[N], got "
                        f"{getattr(labels, 'dtype', type(labels).__name__)}")
    validate_boxes(boxes, where=where)
    if labels.shape != boxes.shape[:1]:
        raise ValueError(f"{where}: labels must have shape [{boxes.shape[0]}] (one per box), "
                         f"got {list(labels.shape)}")
    bad = ((labels < 0) | (labels >= num_classes)).nonzero()
    if bad.numel():
        j = int(bad[0])
        raise ValueError(f"{where}: object {j} has label {int(labels[j])}, expected 0-based "
                         f"labels in [0, {num_classes - 1}] (num_classes={num_classes})")


def _scalar(value: object) -> object:
    return value.item() if isinstance(value, Tensor) and value.numel() == 1 else value


def _validate_images(images: Sequence[Tensor]) -> None:
    if isinstance(images, Tensor) or not isinstance(images, Sequence) or not images:
        raise TypeError(f"images: expected a non-empty list of Tensor[3, H, W], got "
                        f"{type(images).__name__}")
    for i, image in enumerate(images):
        if not isinstance(image, Tensor) or image.ndim != 3 or image.shape[0] != 3:
            shape = list(image.shape) if isinstance(image, Tensor) else type(image).__name__
            raise ValueError(f"images[{i}]: expected Tensor[3, H, W] in [0, 1], got {shape}")


# -- the model ----------------------------------------------------------------------------------
class FasterRCNN(RoIHeadsPostprocess, GeneralizedRCNN):
    """torchvision's ``GeneralizedRCNN`` (transform, backbone, rpn, roi_heads) with 0-based labels.

    ``model(images: list[Tensor[3, H, W]] in [0, 1], targets=None)``; training: targets
    ``{"boxes": float[N, 4] xyxy px, "labels": int64[N] in [0, num_classes)}`` (checked by
    :func:`validate_targets`) -> ``{"loss_classifier", "loss_box_reg", "loss_objectness",
    "loss_rpn_box_reg"}``; eval: per image ``{"boxes": float[K, 4] xyxy px of the original image,
    "scores": float[K], "labels": int64[K] 0-based}``.  ``config`` is the plain-dict build
    configuration (for checkpoints), ``class_names`` those of a loaded checkpoint or ``None``.
    """

    def __init__(self, backbone: DetectionBackbone, rpn: RegionProposalNetwork,
                 roi_heads: RoIHeads, transform: GeneralizedRCNNTransform, num_classes: int,
                 config: Mapping[str, Any] | None = None,
                 class_names: Sequence[str] | None = None) -> None:
        super().__init__(backbone, rpn, roi_heads, transform)
        self.num_classes = num_classes
        self.config = dict(config or {})
        self.class_names = list(class_names) if class_names is not None else None
        self.rescorer: CropRescorer | None = None
        for head in (rpn.head, roi_heads.box_predictor):
            head.register_forward_hook(_float32_outputs)

    def forward(self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None):
        _validate_images(images)
        if targets is None and self.training:
            raise ValueError("FasterRCNN in training mode needs targets (one dict per image); "
                             "call model.eval() for predictions")
        if targets is not None:
            validate_targets(images, targets, self.num_classes)
            targets = [dict(t, labels=t["labels"] + 1) for t in targets]
        out = super().forward(images, targets)
        if self.training:
            return out
        if self.transform.extra_test_sizes:
            out = self._multi_size(images, out)
        out = [dict(o, labels=o["labels"] - 1) for o in out]
        return out if self.rescorer is None else self.rescorer(images, out)

    def _multi_size(self, images: list[Tensor], first: list[dict[str, Tensor]]) -> list[dict[str, Tensor]]:
        """Detections of the eval size (``first``) and of every ``extra_test_sizes`` input, merged
        per image: per-class NMS at the box head's threshold, the best ``detections_per_img`` kept."""
        runs = [first]
        for size in self.transform.extra_test_sizes:
            with self.transform.resized_to(size):
                runs.append(super().forward(images))
        heads = self.roi_heads
        return [merge_detections(per_image, heads.nms_thresh, heads.detections_per_img) for per_image in zip(*runs)]


def _float32_outputs(module: nn.Module, inputs: Any, outputs: Any) -> Any:
    """Forward hook: the head's outputs in float32, so that under autocast the boxes are decoded
    and the losses computed in float32 (torchvision decodes in the deltas' dtype: bfloat16 anchor
    coordinates would be rounded to 2 px at 256-512 px)."""
    if isinstance(outputs, Tensor):
        return outputs.float()
    if isinstance(outputs, (list, tuple)):
        return type(outputs)(_float32_outputs(module, inputs, o) for o in outputs)
    return outputs


def merge_detections(results: Sequence[Mapping[str, Tensor]], iou_threshold: float,
                     max_detections: int) -> dict[str, Tensor]:
    """One image's detections from several runs (``{"boxes": [K, 4] xyxy px, "scores": [K],
    "labels": [K]}`` each, in the same image's pixels) as one: per-class NMS at ``iou_threshold``,
    then the ``max_detections`` highest scores, best first."""
    boxes = torch.cat([r["boxes"] for r in results])
    scores = torch.cat([r["scores"] for r in results])
    labels = torch.cat([r["labels"] for r in results])
    keep = batched_nms(boxes, scores, labels, iou_threshold)[:max_detections]
    return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}


# -- building -----------------------------------------------------------------------------------
def faster_rcnn(
    backbone: str | Backbone = "resnet50",
    *,
    fpn: bool = True,
    num_classes: int | None = None,
    weights: str | Path | None = None,
    backbone_weights: str | Path | None = None,
    rescore_with: str | Path | Mapping[str, Any] | None = None,
    image_size: int | None = None,
    class_names: Sequence[str] | None = None,
    **options: Any,
) -> FasterRCNN:
    """Build a Faster R-CNN on zoo backbone ``backbone`` (see :func:`detect.models.backbone.usable_backbones`).

    Args:
        backbone: zoo model name, or a built zoo :class:`Backbone` (then pass ``image_mean``/
            ``image_std`` unless ImageNet's apply).
        fpn: multi-level FPN (True) or the single stride-16 map, C4-style (False).
        num_classes: real classes, background not counted; ``None``: from ``class_names``, else
            from ``weights``, else 80.
        weights: a detector checkpoint (this project's file, or a state dict in this layout or
            torchvision's ``fasterrcnn_*`` layout for the torchvision-equal architectures).  With a
            different class count every layer but the box predictor is loaded.
        backbone_weights: a classifier checkpoint / torchvision / timm state dict for the backbone.
        rescore_with: a ``classify train`` checkpoint (or the :class:`detect.models.rcnn.rescore.RescorerSpec`
            dict a detector checkpoint keeps) whose classifier rescores every detection from its
            image crop in eval mode (:mod:`detect.models.rcnn.rescore`; it needs the detector's class names,
            from ``class_names`` or :meth:`CropRescorer.bind`).
        image_size: resize to this square size (``min_size = max_size = image_size``).
        class_names: names of the ``num_classes`` classes, kept at ``model.class_names``.
        **options: any field of :class:`FasterRCNNConfig` (RPN / RoI knobs, anchors, ...).
    """
    where = f"faster_rcnn(backbone={_backbone_name(backbone)!r})"
    state, saved_names = (None, None) if weights is None else read_detector_checkpoint(weights)
    num_classes = _resolve_num_classes(num_classes, class_names, state, where)
    if image_size is not None:
        options.update(min_size=image_size, max_size=image_size)
    config = FasterRCNNConfig.from_options(options, where)
    model = _assemble(backbone, fpn, num_classes, backbone_weights, config)
    model.class_names = list(class_names) if class_names is not None else None
    if rescore_with is not None:
        model.rescorer = CropRescorer.from_checkpoint(rescore_with, num_classes, config.rescore_weight,
                                                      config.rescore_min_score)
        model.config["rescore_with"] = model.rescorer.spec.to_dict()  # rebuilt without the file
        if class_names is not None:
            model.rescorer.bind(class_names)
    if state is not None:
        report = load_detector_state(model, state, str(weights))
        if model.class_names is None and saved_names and not report:
            model.class_names = list(saved_names)
    return model


def _backbone_name(backbone: str | Backbone) -> str:
    return backbone if isinstance(backbone, str) else type(backbone).__name__


def _resolve_num_classes(num_classes: int | None, class_names: Sequence[str] | None,
                         state: Mapping[str, Tensor] | None, where: str) -> int:
    if num_classes is None:
        if class_names is not None:
            num_classes = len(class_names)
        elif state is not None and PREDICTOR_KEY in state:
            num_classes = state[PREDICTOR_KEY].shape[0] - 1
        else:
            num_classes = DEFAULT_NUM_CLASSES
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"{where}: num_classes must be an int >= 1 (background not counted), "
                         f"got {num_classes!r}")
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"{where}: {len(class_names)} class_names for num_classes={num_classes}")
    return num_classes


def _assemble(backbone: str | Backbone, fpn: bool, num_classes: int,
              backbone_weights: str | Path | None, config: FasterRCNNConfig) -> FasterRCNN:
    pretrained = backbone_weights is not None
    trainable = config.trainable_layers
    if trainable is None and pretrained:
        trainable = PRETRAINED_TRAINABLE_LAYERS
    body = build_backbone(
        backbone, fpn=fpn, levels=config.levels, out_channels=config.out_channels,
        fpn_norm=_NORMS[config.fpn_norm], weights=backbone_weights, trainable_layers=trainable,
        frozen_bn=pretrained if config.frozen_bn is None else config.frozen_bn)
    rpn = _rpn(body, fpn, config)
    roi_heads = _roi_heads(body, num_classes, config)
    transform = _transform(backbone, body, config)
    resolved = replace(config, trainable_layers=trainable, image_mean=tuple(transform.image_mean),
                       image_std=tuple(transform.image_std),
                       size_divisible=transform.size_divisible,
                       anchor_sizes=rpn.anchor_generator.sizes)
    build = dict(backbone=_backbone_name(backbone), fpn=fpn, num_classes=num_classes,
                 **asdict(resolved))
    return FasterRCNN(body, rpn, roi_heads, transform, num_classes, _plain(build))


def _plain(value: Any) -> Any:
    """Tuples to lists, recursively, so that the config is plain YAML / JSON."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _rpn(body: DetectionBackbone, fpn: bool, config: FasterRCNNConfig) -> RegionProposalNetwork:
    if config.anchor_sizes is None:
        sizes = anchor_sizes_for(body.feature_info, scales=(1.0,) if fpn else C4_ANCHOR_SCALES)
    else:
        sizes = normalize_anchor_sizes(config.anchor_sizes, body.feature_info)
    anchors = anchor_generator(sizes, config.aspect_ratios)
    head = RPNHead(body.out_channels, anchors.num_anchors_per_location()[0],
                   conv_depth=config.rpn_conv_depth)
    return RegionProposalNetwork(
        anchors, head, config.rpn_fg_iou_thresh, config.rpn_bg_iou_thresh,
        config.rpn_batch_size_per_image, config.rpn_positive_fraction,
        dict(training=config.rpn_pre_nms_top_n_train, testing=config.rpn_pre_nms_top_n_test),
        dict(training=config.rpn_post_nms_top_n_train, testing=config.rpn_post_nms_top_n_test),
        config.rpn_nms_thresh, score_thresh=config.rpn_score_thresh)


def _roi_pool(body: DetectionBackbone, config: FasterRCNNConfig) -> ParallelMultiScaleRoIAlign:
    """RoIAlign over the backbone's levels, its scales set from their declared strides.

    torchvision infers them on the first call from feature and image sizes, rounded to a power of
    two, and keeps them: a small first input padded a lot (38 x 48 px padded to 64 x 64) gives
    stride 2 for the stride-4 level, and every later call pools at the wrong scale.  The pool is
    torchvision's with a backward that uses every CPU thread (:mod:`detect.models.rcnn.roi_align`).
    """
    levels = body.levels
    pool = ParallelMultiScaleRoIAlign([f.name for f in levels], config.roi_output_size, config.roi_sampling_ratio,
                              canonical_scale=config.roi_canonical_scale,
                              canonical_level=config.roi_canonical_level)
    pool.scales = [1.0 / f.stride for f in levels]
    pool.map_levels = initLevelMapper(int(math.log2(levels[0].stride)), int(math.log2(levels[-1].stride)),
                                      canonical_scale=config.roi_canonical_scale,
                                      canonical_level=config.roi_canonical_level)
    return pool


def _roi_heads(body: DetectionBackbone, num_classes: int, config: FasterRCNNConfig) -> RoIHeads:
    size, channels = config.roi_output_size, body.out_channels
    pool = _roi_pool(body, config)
    if config.box_head == "mlp":
        head = TwoMLPHead(channels * size * size, config.representation_size)
    else:  # torchvision's fasterrcnn_resnet50_fpn_v2 head
        head = FastRCNNConvFCHead((channels, size, size), [256, 256, 256, 256],
                                  [config.representation_size], norm_layer=nn.BatchNorm2d)
    predictor = FastRCNNPredictor(config.representation_size, num_classes + 1)
    return RoIHeads(
        pool, head, predictor, config.box_fg_iou_thresh, config.box_bg_iou_thresh,
        config.box_batch_size_per_image, config.box_positive_fraction, config.bbox_reg_weights,
        config.box_score_thresh, config.box_nms_thresh, config.box_detections_per_img)


def _transform(backbone: str | Backbone, body: DetectionBackbone,
               config: FasterRCNNConfig) -> GeneralizedRCNNTransform:
    if isinstance(backbone, str):
        entry = get_model_entry(backbone)
        mean, std = entry.mean, entry.std
    else:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    divisible = config.size_divisible or max(32, max(f.stride for f in body.levels))
    return EvalSizeTransform(
        config.min_size, config.max_size, list(config.image_mean or mean),
        list(config.image_std or std), size_divisible=divisible, test_size=config.test_size,
        extra_test_sizes=config.extra_test_sizes)


class EvalSizeTransform(GeneralizedRCNNTransform):
    """torchvision's transform, resizing to ``test_size`` (square) in eval mode when it is set.

    Small objects gain from a larger input at inference than in training (the recipe's digits,
    trained at 320 px: val mAP50 0.804 at 320, 0.837 at 416).  ``model.eval()`` / ``model.train()``
    switch the sizes; the weights do not depend on them.  ``extra_test_sizes`` are the further
    eval sizes of :class:`FasterRCNN`'s multi-size test, applied through :meth:`resized_to`.
    """

    def __init__(self, min_size: int, max_size: int, image_mean: list[float], image_std: list[float],
                 size_divisible: int, test_size: int | None = None,
                 extra_test_sizes: tuple[int, ...] = ()) -> None:
        super().__init__(min_size, max_size, image_mean, image_std, size_divisible=size_divisible)
        self.test_size = test_size
        self.extra_test_sizes = tuple(extra_test_sizes)
        self._train_sizes = (self.min_size, self.max_size)

    @contextmanager
    def resized_to(self, size: int) -> Iterator[None]:
        """Resize eval inputs to ``size`` x ``size`` inside the ``with`` block."""
        assert not self.training, "resized_to is an eval-mode size"
        saved = self.min_size, self.max_size
        self.min_size, self.max_size = (size,), size
        try:
            yield
        finally:
            self.min_size, self.max_size = saved

    def train(self, mode: bool = True) -> EvalSizeTransform:
        super().train(mode)
        if self.test_size is not None:
            self.min_size, self.max_size = self._train_sizes if mode else ((self.test_size,), self.test_size)
        return self


# -- weights ------------------------------------------------------------------------------------
PREDICTOR_KEY = "roi_heads.box_predictor.cls_score.weight"
_PREDICTOR_PREFIX = "roi_heads.box_predictor."


def read_detector_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], list[str] | None]:
    """``(state dict, class names or None)`` from a detector checkpoint file.

    Accepts this project's checkpoints (``classify.base.checkpoint`` format), dicts nesting a state
    dict under ``"model"``/``"state_dict"``, and plain state dicts; a DDP ``"module."`` prefix is
    stripped.  torchvision-layout keys are kept as they are (see :func:`load_detector_state`).
    """
    obj = read_torch_file(path, "detector weights file")
    names = obj.get("class_names") if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT else None
    return state_dict_from(obj, str(path)), list(names) if names else None


def load_detector_state(model: FasterRCNN, state: Mapping[str, Tensor], where: str) -> list[str]:
    """Load ``state`` (our layout or torchvision's) into ``model``; strict but for the predictor.

    If the checkpoint's class count differs from the model's, the box predictor keeps its
    fresh init (fine-tuning); its keys are returned.  Anything else that does not fit (missing,
    unexpected or mis-shaped keys) raises ``ValueError`` naming the first few; nothing is loaded.
    """
    own = model.state_dict()
    if is_torchvision_layout(state, own):
        state = convert_torchvision_state_dict(state, own)
    skipped: list[str] = []
    if PREDICTOR_KEY in state and state[PREDICTOR_KEY].shape != own[PREDICTOR_KEY].shape:
        skipped = [k for k in own if k.startswith(_PREDICTOR_PREFIX)]
        state = {k: v for k, v in state.items() if not k.startswith(_PREDICTOR_PREFIX)}
    load_state_strict(model, state, where, keep=skipped, hint="check backbone, fpn, levels and head options")
    return skipped


# -- registry -----------------------------------------------------------------------------------
register_detector("faster_rcnn", family="faster_rcnn", backbone="resnet50-fpn (backbone=NAME)")(faster_rcnn)
