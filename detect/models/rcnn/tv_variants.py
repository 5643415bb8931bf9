"""torchvision's Faster R-CNN architectures rebuilt from our parts, and their COCO checkpoints.

Four variants reproduce torchvision's models layer for layer (same outputs for the same weights):

=========================================  =====================================================
torchvision builder (registry name)         what it takes
=========================================  =====================================================
``fasterrcnn_resnet50_fpn``                 ResNet-50, FPN on layer1..4 + pool, anchors 32..512,
(``faster_rcnn_resnet50_fpn``)              1-conv RPN head, TwoMLPHead(1024), 800/1333 px
``fasterrcnn_resnet50_fpn_v2``              as above with BatchNorm in the FPN, a 2-conv RPN head
(``faster_rcnn_resnet50_fpn_v2``)           and the 4-conv + 1-FC box head (BatchNorm)
``fasterrcnn_mobilenet_v3_large_fpn``       MobileNetV3-Large, FPN on ``features.13`` and
(``faster_rcnn_mobilenet_v3_large_fpn``)    ``features.16`` (both stride 32) + pool, anchors
                                            (32..512) on each of the 3 levels, rpn_score_thresh
                                            0.05, 800/1333 px
``fasterrcnn_mobilenet_v3_large_320_fpn``   as above at 320/640 px, 150 RPN proposals at test
(``faster_rcnn_mobilenet_v3_large_320_fpn``)
=========================================  =====================================================

torchvision's MobileNet extractor taps the last strided block (``features.13``, stride 32) and
the last layer; the zoo's MobileNetV3 does not tap ``features.13``, so :func:`add_torchvision_taps`
adds that tap to the model's ``feature_info`` (stride derived from the convolution strides).
torchvision's detection MobileNet also uses BatchNorm eps 1e-5 (its classifier: 1e-3); the
variant sets it on the backbone.

Checkpoints: torchvision's state dicts (``torch.save(model.state_dict())`` of a ``fasterrcnn_*``
model, e.g. the COCO files) differ from ours only in the backbone prefix: torchvision's
``backbone.body.<k>`` (an ``IntermediateLayerGetter``) is our ``backbone.body.body.<k>`` (ResNet)
or ``backbone.body.body.features.<k>`` (MobileNet).  :func:`load_torchvision_checkpoint` builds the
variant and loads such a file; ``get_detector(<registry name>, weights=PATH)`` does the same.  A
COCO file has 91 outputs (background + 90 category indices, some unused, "N/A"): it loads as
``num_classes=90`` and our label ``k`` is torchvision's category ``k + 1`` (``COCO_CLASS_NAMES``).

``as_coco_pretrained=True`` builds the model as torchvision does *when it loads its COCO
weights*: backbone BatchNorm frozen (``FrozenBatchNorm2d``, eps 0.0 for ``resnet50_fpn`` after
torchvision's ``overwrite_eps``, 1e-5 for the MobileNets; ``_v2`` keeps ``BatchNorm2d``) and
``trainable_layers=3``.  The default builds it as torchvision does with ``weights=None``
(``BatchNorm2d``, everything trainable).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from torch import nn
from torchvision.models._meta import _COCO_CATEGORIES
from torchvision.ops.misc import FrozenBatchNorm2d

from classify.models.features import FeatureInfo
from classify.models.registry import get_model, get_model_entry
from classify.models.tv_wrapper import SequentialBackbone, channels_upto
from detect.models.rcnn.faster_rcnn import FasterRCNN, faster_rcnn
from detect.models.registry import register_detector

__all__ = ["COCO_CLASS_NAMES", "REGISTERED_VARIANTS", "TorchvisionVariant", "VARIANTS",
           "add_torchvision_taps", "build_from_config", "load_torchvision_checkpoint", "torchvision_variant"]

#: our 90 COCO labels: torchvision's category indices 1..90 (unused indices are "N/A")
COCO_CLASS_NAMES = tuple(_COCO_CATEGORIES[1:])
PRETRAINED_TRAINABLE_LAYERS = 3
_MOBILENET_ANCHORS = ((32, 64, 128, 256, 512),) * 3
_MOBILENET_LEVELS = ("features.13", "features.16")


@dataclass(frozen=True)
class TorchvisionVariant:
    """One torchvision ``fasterrcnn_*`` architecture as options of :func:`detect.models.rcnn.faster_rcnn.faster_rcnn`.

    ``bn_eps``: the eps of torchvision's backbone BatchNorm layers where it differs from the zoo
    model's (torchvision's detection MobileNet passes ``norm_layer=nn.BatchNorm2d``, eps 1e-5,
    not the classifier's 1e-3).  ``coco_bn_eps``: the eps of the ``FrozenBatchNorm2d`` layers of
    torchvision's COCO-weights model; ``None`` if that model keeps ``BatchNorm2d`` (v2).
    """

    torchvision_name: str
    registry_name: str
    backbone: str
    shown_backbone: str
    options: Mapping[str, Any] = field(default_factory=dict)
    torchvision_taps: bool = False
    bn_eps: float | None = None
    coco_bn_eps: float | None = None


VARIANTS: dict[str, TorchvisionVariant] = {v.torchvision_name: v for v in (
    TorchvisionVariant("fasterrcnn_resnet50_fpn", "faster_rcnn_resnet50_fpn", "resnet50",
                       "resnet50-fpn", coco_bn_eps=0.0),
    TorchvisionVariant("fasterrcnn_resnet50_fpn_v2", "faster_rcnn_resnet50_fpn_v2", "resnet50",
                       "resnet50-fpn",
                       dict(fpn_norm="bn", rpn_conv_depth=2, box_head="conv")),
    TorchvisionVariant("fasterrcnn_mobilenet_v3_large_fpn", "faster_rcnn_mobilenet_v3_large_fpn",
                       "mobilenet_v3_large", "mobilenet_v3_large-fpn",
                       dict(levels=_MOBILENET_LEVELS, anchor_sizes=_MOBILENET_ANCHORS,
                            rpn_score_thresh=0.05),
                       torchvision_taps=True, bn_eps=1e-5, coco_bn_eps=1e-5),
    TorchvisionVariant("fasterrcnn_mobilenet_v3_large_320_fpn",
                       "faster_rcnn_mobilenet_v3_large_320_fpn", "mobilenet_v3_large",
                       "mobilenet_v3_large-fpn",
                       dict(levels=_MOBILENET_LEVELS, anchor_sizes=_MOBILENET_ANCHORS,
                            rpn_score_thresh=0.05, min_size=320, max_size=640,
                            rpn_pre_nms_top_n_test=150, rpn_post_nms_top_n_test=150),
                       torchvision_taps=True, bn_eps=1e-5, coco_bn_eps=1e-5),
)}
REGISTERED_VARIANTS = {v.registry_name: v for v in VARIANTS.values()}


def resolve_variant(variant: str) -> TorchvisionVariant:
    """A variant by torchvision name, registry name or short name (``"resnet50_fpn_v2"``)."""
    for table in (VARIANTS, REGISTERED_VARIANTS):
        if variant in table:
            return table[variant]
    if f"fasterrcnn_{variant}" in VARIANTS:
        return VARIANTS[f"fasterrcnn_{variant}"]
    raise ValueError(f"unknown torchvision Faster R-CNN variant {variant!r}; expected one of "
                     f"{', '.join(VARIANTS)} (or without the 'fasterrcnn_' prefix)")


# -- the MobileNet taps -------------------------------------------------------------------------
def add_torchvision_taps(body: SequentialBackbone) -> SequentialBackbone:
    """Add the taps of torchvision's MobileNet detection extractor to a zoo MobileNet.

    torchvision reads the output of the last block marked ``_is_cn`` (strided) and of the last
    layer of ``features``.  Missing ones are inserted into ``tap_indices`` and ``feature_info``
    (stride: product of the convolution strides up to that block); the model is changed in place.
    """
    seq = body.body.features
    strided = [i for i, block in enumerate(seq) if getattr(block, "_is_cn", False)]
    if not strided:
        raise ValueError(f"{type(body).__name__}: no block marked _is_cn in features; "
                         f"torchvision's MobileNet taps need a torchvision MobileNet v2/v3")
    taps = sorted(set(body.tap_indices) | {strided[-1], len(seq) - 1})
    info = [FeatureInfo(f"features.{i}", channels_upto(seq, i), _cumulative_stride(seq, i))
            for i in taps]
    body.tap_indices = tuple(taps)
    body._set_feature_info(info)
    return body


def _cumulative_stride(seq: nn.Sequential, index: int) -> int:
    stride = 1
    for module in seq[: index + 1].modules():
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            s = module.stride
            stride *= s[0] if isinstance(s, tuple) else s
    return stride


# -- building and loading -----------------------------------------------------------------------
def torchvision_variant(variant: str, *, weights: str | Path | None = None,
                        as_coco_pretrained: bool = False, **overrides: Any) -> FasterRCNN:
    """Our Faster R-CNN with the architecture of torchvision's ``variant`` (see module doc).

    ``overrides`` are any :func:`detect.models.rcnn.faster_rcnn.faster_rcnn` arguments (``num_classes``,
    ``image_size``, ``backbone_weights``, RPN / RoI options...); ``weights`` a detector file in
    our layout or torchvision's.  ``num_classes=None`` with weights: the file's count.
    """
    spec = resolve_variant(variant)
    options = {**spec.options, **overrides}
    if as_coco_pretrained:
        options.setdefault("trainable_layers", PRETRAINED_TRAINABLE_LAYERS)
        options.setdefault("frozen_bn", spec.coco_bn_eps is not None)
    backbone: Any = spec.backbone
    if spec.torchvision_taps:
        entry = get_model_entry(spec.backbone)
        backbone = add_torchvision_taps(get_model(spec.backbone, num_classes=0, in_chans=3))
        options.setdefault("image_mean", entry.mean)
        options.setdefault("image_std", entry.std)
    model = faster_rcnn(backbone, fpn=True, weights=weights, **options)
    eps = spec.coco_bn_eps if as_coco_pretrained and spec.coco_bn_eps is not None else spec.bn_eps
    if eps is not None:
        _set_bn_eps(model.backbone.body, eps)
    if weights is not None and model.class_names is None and model.num_classes == len(COCO_CLASS_NAMES) \
            and "class_names" not in overrides:
        model.class_names = list(COCO_CLASS_NAMES)
    model.config.update(variant=spec.registry_name, as_coco_pretrained=as_coco_pretrained)
    return model


def load_torchvision_checkpoint(path: str | Path, variant: str, **overrides: Any) -> FasterRCNN:
    """Load torchvision's ``fasterrcnn_*`` state dict at ``path`` into the equal architecture.

    ``variant``: e.g. ``"fasterrcnn_resnet50_fpn"`` / ``"resnet50_fpn"``; ``overrides`` as for
    :func:`torchvision_variant` (e.g. ``as_coco_pretrained=True``, ``num_classes=10`` to keep
    all but the box predictor for fine-tuning).
    """
    return torchvision_variant(variant, weights=path, **overrides)


def _set_bn_eps(module: nn.Module, eps: float) -> None:
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d)):
            m.eps = eps


def build_from_config(config: Mapping[str, Any], **kwargs: Any) -> FasterRCNN:
    """Rebuild the architecture recorded in ``model.config`` (e.g. from a checkpoint's config).

    ``kwargs`` (e.g. ``weights=PATH``) are passed on.  Models built from a zoo instance rather
    than a name (other than the torchvision variants) cannot be rebuilt this way.
    """
    options = dict(config)
    variant = options.pop("variant", None)
    if variant is not None:
        options.pop("backbone", None)
        options.pop("fpn", None)
        return torchvision_variant(variant, **options, **kwargs)
    return faster_rcnn(**options, **kwargs)


for _name, _variant in REGISTERED_VARIANTS.items():
    register_detector(_name, family="faster_rcnn", backbone=_variant.shown_backbone)(
        partial(torchvision_variant, _variant.torchvision_name))
