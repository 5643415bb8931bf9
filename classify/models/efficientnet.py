"""EfficientNet-B0 (Tan & Le, 2019), wrapping torchvision's ``EfficientNet``.

Taps: ``features.1`` (stride 2, 16 ch), ``features.2`` (4, 24), ``features.3`` (8, 40),
``features.5`` (16, 112), ``features.8`` (32, 1280; the final 1x1 conv the classifier pools).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from torchvision import models as tvm

from classify.models.features import last
from classify.models.registry import register_model
from classify.models.tv_wrapper import SequentialBackbone

__all__ = ["EfficientNet", "efficientnet_b0"]


class EfficientNet(SequentialBackbone):
    """torchvision ``EfficientNet`` (B0) at ``self.body``."""

    stem_conv_path = "body.features.0.0"
    classifier_paths = ("body.classifier.1",)

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> None:
        body = tvm.efficientnet_b0(weights=None, num_classes=max(num_classes, 1), **kwargs)
        super().__init__(body, ((1, 2), (2, 4), (3, 8), (5, 16), (8, 32)))
        self._finish_init(num_classes, in_chans)

    def forward_head(self, features: Mapping[str, Tensor]) -> Tensor:
        """Last map -> global average pool -> dropout -> linear -> ``Tensor[N, K]``."""
        return self.body.classifier(torch.flatten(self.body.avgpool(last(features)), 1))


@register_model(min_input_size=32, paper="https://arxiv.org/abs/1905.11946")
def efficientnet_b0(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> EfficientNet:
    """EfficientNet-B0, 5,288,548 parameters at 1000 classes."""
    return EfficientNet(num_classes, in_chans, **kwargs)
