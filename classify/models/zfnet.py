"""ZFNet (Zeiler & Fergus, 2013, "Visualizing and Understanding Convolutional Networks", Fig. 3).

AlexNet's design with the first layer changed to 96 filters of 7x7 at stride 2 (AlexNet: 11x11
at stride 4) and dense (single-GPU) connections in layers 3 to 5.  On a 224x224 input the maps
are 110 -> 55 (pool) -> 26 -> 13 (pool) -> 13 -> 13 -> 13 -> 6 (pool), as in the paper's figure.

Documented choices: the paper's "contrast normalisation across feature maps" after the first two
pooling layers is ``nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2)`` (AlexNet's values);
pooling is 3x3 / 2 with 1 px of padding where the paper's map sizes need it; an adaptive 6x6
average pool before the classifier lets other input sizes through (identity at 224); dropout 0.5
in the two hidden FC layers; weights start at N(0, 0.01), biases at 0 (paper, section 3).  The
paper publishes no parameter count: this layout has 62,357,608 at 1000 classes (14,208 in conv1).

Taps: ``conv1`` (stride 2, 96 ch), ``conv2`` (8, 256), ``conv5`` (16, 256), ``pool5`` (32, 256).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from classify.models.features import Backbone, FeatureInfo, last
from classify.models.registry import register_model
from classify.models.tv_wrapper import run_named

__all__ = ["ZFNet", "zfnet"]

_ORDER = ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5")
_TAPS = {n: n for n in ("conv1", "conv2", "conv5", "pool5")}


def _conv(cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.ReLU(inplace=True))


def _pool_norm() -> nn.Sequential:
    return nn.Sequential(nn.MaxPool2d(3, 2, padding=1),
                         nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0))


class ZFNet(Backbone):
    """ZFNet with modules ``conv1, pool1, conv2, pool2, conv3..conv5, pool5, classifier``."""

    stem_conv_path = "conv1.0"
    classifier_paths = ("classifier.6",)

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        self.conv1 = _conv(in_chans, 96, 7, stride=2, padding=1)
        self.pool1 = _pool_norm()
        self.conv2 = _conv(96, 256, 5, stride=2)
        self.pool2 = _pool_norm()
        self.conv3 = _conv(256, 384, 3, padding=1)
        self.conv4 = _conv(384, 384, 3, padding=1)
        self.conv5 = _conv(384, 256, 3, padding=1)
        self.pool5 = nn.MaxPool2d(3, 2)
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, max(num_classes, 1)),
        )
        self.apply(_init)
        self._set_feature_info([FeatureInfo("conv1", 96, 2), FeatureInfo("conv2", 256, 8),
                                FeatureInfo("conv5", 256, 16), FeatureInfo("pool5", 256, 32)])
        self._finish_init(num_classes, in_chans)

    def features(self, x: Tensor) -> OrderedDict[str, Tensor]:
        """``x: Tensor[N, C, H, W]`` -> four maps (about H/2, H/8, H/16, H/32 pixels high)."""
        return run_named(self, _ORDER, x, _TAPS)[0]

    def forward_head(self, features: Mapping[str, Tensor]) -> Tensor:
        """pool5 ``Tensor[N, 256, h, w]`` -> adaptive 6x6 pool -> 3 FC layers -> ``[N, K]``."""
        return self.classifier(torch.flatten(self.avgpool(last(features)), 1))


def _init(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.01)
        nn.init.zeros_(module.bias)


@register_model(min_input_size=53, paper="https://arxiv.org/abs/1311.2901")
def zfnet(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ZFNet:
    """ZFNet, 62,357,608 parameters at 1000 classes (computed; the paper gives none)."""
    return ZFNet(num_classes, in_chans, **kwargs)
