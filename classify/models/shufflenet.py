"""ShuffleNet v2 x1.0 (Ma et al., 2018), wrapping torchvision's ``ShuffleNetV2``.

Taps: ``conv1`` (stride 2, 24 ch), ``maxpool`` (4, 24), ``stage2`` (8, 116), ``stage3`` (16, 232),
``conv5`` (32, 1024; the final 1x1 conv after ``stage4``, the map the classifier pools).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from torch import Tensor
from torchvision import models as tvm

from classify.models.features import FeatureInfo, last
from classify.models.registry import register_model
from classify.models.tv_wrapper import TorchvisionBackbone, run_named

__all__ = ["ShuffleNetV2", "shufflenet_v2_x1_0"]

_ORDER = ("conv1", "maxpool", "stage2", "stage3", "stage4", "conv5")
_TAPS = {n: n for n in ("conv1", "maxpool", "stage2", "stage3", "conv5")}


class ShuffleNetV2(TorchvisionBackbone):
    """torchvision ``ShuffleNetV2`` at ``self.body`` with five taps (strides 2 to 32)."""

    stem_conv_path = "body.conv1.0"
    classifier_paths = ("body.fc",)

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> None:
        body = tvm.shufflenet_v2_x1_0(weights=None, num_classes=max(num_classes, 1), **kwargs)
        super().__init__(body)
        c = body._stage_out_channels  # [24, 116, 232, 464, 1024] at x1.0
        self._set_feature_info([FeatureInfo("conv1", c[0], 2), FeatureInfo("maxpool", c[0], 4),
                                FeatureInfo("stage2", c[1], 8), FeatureInfo("stage3", c[2], 16),
                                FeatureInfo("conv5", c[4], 32)])
        self._finish_init(num_classes, in_chans)

    def features(self, x: Tensor) -> OrderedDict[str, Tensor]:
        """``x: Tensor[N, C, H, W]`` -> five maps ``Tensor[N, C_i, H/s_i, W/s_i]``."""
        return run_named(self.body, _ORDER, x, _TAPS)[0]

    def forward_head(self, features: Mapping[str, Tensor]) -> Tensor:
        """``conv5`` -> global average pool -> fc -> ``Tensor[N, K]``."""
        return self.body.fc(last(features).mean((2, 3)))


@register_model(min_input_size=32, paper="https://arxiv.org/abs/1807.11164")
def shufflenet_v2_x1_0(num_classes: int = 1000, in_chans: int = 3,
                       **kwargs: Any) -> ShuffleNetV2:
    """ShuffleNet v2 x1.0, 2,278,604 parameters at 1000 classes."""
    return ShuffleNetV2(num_classes, in_chans, **kwargs)
