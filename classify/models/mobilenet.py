"""MobileNet v2 (Sandler et al., 2018) and v3 large/small (Howard et al., 2019), over torchvision.

Taps are the last block of ``features`` at each stride 2, 4, 8, 16, 32; the stride-32 tap is the
final 1x1 convolution (1280 / 960 / 576 channels), the map the classifier pools.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision import models as tvm

from classify.models.features import last
from classify.models.registry import register_model
from classify.models.tv_wrapper import SequentialBackbone

__all__ = ["MobileNetV2", "MobileNetV3", "mobilenet_v2", "mobilenet_v3_large",
           "mobilenet_v3_small"]

_STRIDES = (2, 4, 8, 16, 32)


class MobileNetV2(SequentialBackbone):
    """torchvision ``MobileNetV2`` at ``self.body``; taps ``features.{1,3,6,13,18}``."""

    stem_conv_path = "body.features.0.0"
    classifier_paths = ("body.classifier.1",)

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> None:
        body = tvm.mobilenet_v2(weights=None, num_classes=max(num_classes, 1), **kwargs)
        super().__init__(body, tuple(zip((1, 3, 6, 13, 18), _STRIDES)))
        self._finish_init(num_classes, in_chans)

    def forward_head(self, features: Mapping[str, Tensor]) -> Tensor:
        """Last map -> global average pool -> dropout -> linear -> ``Tensor[N, K]``."""
        x = torch.flatten(F.adaptive_avg_pool2d(last(features), (1, 1)), 1)
        return self.body.classifier(x)


class MobileNetV3(SequentialBackbone):
    """torchvision ``MobileNetV3`` at ``self.body``; ``taps`` are ``features`` indices."""

    stem_conv_path = "body.features.0.0"
    classifier_paths = ("body.classifier.3",)

    def __init__(self, builder: Callable[..., nn.Module], taps: Sequence[int],
                 num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> None:
        body = builder(weights=None, num_classes=max(num_classes, 1), **kwargs)
        super().__init__(body, tuple(zip(taps, _STRIDES)))
        self._finish_init(num_classes, in_chans)

    def forward_head(self, features: Mapping[str, Tensor]) -> Tensor:
        """Last map -> global average pool -> linear, hardswish, dropout, linear -> ``[N, K]``."""
        return self.body.classifier(torch.flatten(self.body.avgpool(last(features)), 1))


@register_model(min_input_size=32, paper="https://arxiv.org/abs/1801.04381")
def mobilenet_v2(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MobileNetV2:
    """MobileNet v2 (width 1.0), 3,504,872 parameters at 1000 classes."""
    return MobileNetV2(num_classes, in_chans, **kwargs)


@register_model(min_input_size=32, paper="https://arxiv.org/abs/1905.02244")
def mobilenet_v3_large(num_classes: int = 1000, in_chans: int = 3,
                       **kwargs: Any) -> MobileNetV3:
    """MobileNet v3 large, 5,483,032 parameters at 1000 classes; taps features.{1,3,6,12,16}."""
    return MobileNetV3(tvm.mobilenet_v3_large, (1, 3, 6, 12, 16), num_classes, in_chans, **kwargs)


@register_model(min_input_size=32, paper="https://arxiv.org/abs/1905.02244")
def mobilenet_v3_small(num_classes: int = 1000, in_chans: int = 3,
                       **kwargs: Any) -> MobileNetV3:
    """MobileNet v3 small, 2,542,856 parameters at 1000 classes; taps features.{0,1,3,8,12}."""
    return MobileNetV3(tvm.mobilenet_v3_small, (0, 1, 3, 8, 12), num_classes, in_chans, **kwargs)
