"""VGG-11/13/16/19, with and without batch norm (Simonyan & Zisserman, 2014), over torchvision.

Taps: the last activation of each of the five blocks, before its max-pool (strides 1, 2, 4, 8,
16: ``conv5_3`` at stride 16 is the map Fast/Faster R-CNN pool from), and pool5 (stride 32).
Names are ``features.<index>`` in torchvision's ``features`` sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torchvision import models as tvm

from classify.models.features import last
from classify.models.registry import register_model
from classify.models.tv_wrapper import SequentialBackbone

__all__ = [
    "VGG", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
    "vgg_taps",
]

_PAPER = "https://arxiv.org/abs/1409.1556"


def vgg_taps(features: nn.Sequential) -> tuple[list[tuple[int, int]], list[int]]:
    """``(index, stride)`` of each block's last activation and of pool5, with channels."""
    taps, channels, stride, width = [], [], 1, 0
    for i, layer in enumerate(features):
        if isinstance(layer, nn.Conv2d):
            width = layer.out_channels
        elif isinstance(layer, nn.MaxPool2d):
            taps.append((i - 1, stride))
            channels.append(width)
            stride *= 2
    taps.append((len(features) - 1, stride))
    channels.append(width)
    return taps, channels


class VGG(SequentialBackbone):
    """torchvision ``VGG`` at ``self.body``, six taps (strides 1 to 32)."""

    stem_conv_path = "body.features.0"
    classifier_paths = ("body.classifier.6",)

    def __init__(self, builder: Callable[..., nn.Module], num_classes: int = 1000,
                 in_chans: int = 3, **kwargs: Any) -> None:
        body = builder(weights=None, num_classes=max(num_classes, 1), **kwargs)
        taps, channels = vgg_taps(body.features)
        super().__init__(body, taps, channels)
        self._finish_init(num_classes, in_chans)

    def forward_head(self, features: Mapping[str, Tensor]) -> Tensor:
        """pool5 ``Tensor[N, 512, h, w]`` -> adaptive 7x7 pool -> 3 FC layers -> ``[N, K]``."""
        return self.body.classifier(torch.flatten(self.body.avgpool(last(features)), 1))


@register_model(min_input_size=32, paper=_PAPER)
def vgg11(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VGG:
    """VGG-11, 132,863,336 parameters at 1000 classes (torchvision)."""
    return VGG(tvm.vgg11, num_classes, in_chans, **kwargs)


@register_model(min_input_size=32, paper=_PAPER)
def vgg11_bn(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VGG:
    """VGG-11 with batch norm, 132,868,840 parameters at 1000 classes (torchvision)."""
    return VGG(tvm.vgg11_bn, num_classes, in_chans, **kwargs)


@register_model(min_input_size=32, paper=_PAPER)
def vgg13(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VGG:
    """VGG-13, 133,047,848 parameters at 1000 classes (torchvision)."""
    return VGG(tvm.vgg13, num_classes, in_chans, **kwargs)


@register_model(min_input_size=32, paper=_PAPER)
def vgg13_bn(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VGG:
    """VGG-13 with batch norm, 133,053,736 parameters at 1000 classes (torchvision)."""
    return VGG(tvm.vgg13_bn, num_classes, in_chans, **kwargs)


@register_model(min_input_size=32, paper=_PAPER)
def vgg16(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VGG:
    """VGG-16, 138,357,544 parameters at 1000 classes (torchvision)."""
    return VGG(tvm.vgg16, num_classes, in_chans, **kwargs)


@register_model(min_input_size=32, paper=_PAPER)
def vgg16_bn(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VGG:
    """VGG-16 with batch norm, 138,365,992 parameters at 1000 classes (torchvision)."""
    return VGG(tvm.vgg16_bn, num_classes, in_chans, **kwargs)


@register_model(min_input_size=32, paper=_PAPER)
def vgg19(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VGG:
    """VGG-19, 143,667,240 parameters at 1000 classes (torchvision)."""
    return VGG(tvm.vgg19, num_classes, in_chans, **kwargs)


@register_model(min_input_size=32, paper=_PAPER)
def vgg19_bn(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VGG:
    """VGG-19 with batch norm, 143,678,248 parameters at 1000 classes (torchvision)."""
    return VGG(tvm.vgg19_bn, num_classes, in_chans, **kwargs)
