"""ConvNeXt-T (Liu et al., 2022), wrapping torchvision's ``ConvNeXt``.

Taps: ``features.1``, ``.3``, ``.5``, ``.7``: the outputs of the four stages (strides 4, 8, 16, 32;
96, 192, 384, 768 channels).  The 4x4/4 patchify stem gives no stride-2 map.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor
from torchvision import models as tvm

from classify.models.features import last
from classify.models.registry import register_model
from classify.models.tv_wrapper import SequentialBackbone

__all__ = ["ConvNeXt", "convnext_tiny"]


class ConvNeXt(SequentialBackbone):
    """torchvision ``ConvNeXt`` (tiny) at ``self.body``."""

    stem_conv_path = "body.features.0.0"
    classifier_paths = ("body.classifier.2",)

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> None:
        body = tvm.convnext_tiny(weights=None, num_classes=max(num_classes, 1), **kwargs)
        super().__init__(body, ((1, 4), (3, 8), (5, 16), (7, 32)))
        self._finish_init(num_classes, in_chans)

    def forward_head(self, features: Mapping[str, Tensor]) -> Tensor:
        """Last map -> global average pool -> LayerNorm -> linear -> ``Tensor[N, K]``."""
        return self.body.classifier(self.body.avgpool(last(features)))


@register_model(min_input_size=32, paper="https://arxiv.org/abs/2201.03545")
def convnext_tiny(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ConvNeXt:
    """ConvNeXt-T, 28,589,128 parameters at 1000 classes."""
    return ConvNeXt(num_classes, in_chans, **kwargs)
