"""AlexNet (Krizhevsky et al., 2012), wrapping torchvision's single-tower version.

Taps: ``features.1`` (conv1, stride 4, 64 ch), ``features.4`` (conv2, 8, 192),
``features.11`` (conv5 after ReLU, 16, 256: the map Fast R-CNN pools from) and ``features.12``
(pool5, 32, 256).  Unpadded 11x11/4 stem: a 224 input gives 55/27/13/6-pixel maps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from torchvision.models import alexnet as tv_alexnet

from classify.models.features import last
from classify.models.registry import register_model
from classify.models.tv_wrapper import SequentialBackbone

__all__ = ["AlexNet", "alexnet"]


class AlexNet(SequentialBackbone):
    """torchvision ``AlexNet`` at ``self.body`` with four feature taps."""

    stem_conv_path = "body.features.0"
    classifier_paths = ("body.classifier.6",)

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> None:
        body = tv_alexnet(weights=None, num_classes=max(num_classes, 1), **kwargs)
        super().__init__(body, taps=((1, 4), (4, 8), (11, 16), (12, 32)))
        self._finish_init(num_classes, in_chans)

    def forward_head(self, features: Mapping[str, Tensor]) -> Tensor:
        """pool5 ``Tensor[N, 256, h, w]`` -> adaptive 6x6 pool -> 3 FC layers -> ``[N, K]``."""
        x = torch.flatten(self.body.avgpool(last(features)), 1)
        return self.body.classifier(x)


@register_model(min_input_size=63, paper="https://papers.nips.cc/paper/4824")
def alexnet(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> AlexNet:
    """AlexNet, 61,100,840 parameters at 1000 classes (torchvision's one-tower layout)."""
    return AlexNet(num_classes, in_chans, **kwargs)
