"""DenseNet-121/169/201 (Huang et al., 2016), wrapping torchvision's ``DenseNet``.

Taps (names are paths in torchvision's ``features``): ``features.relu0`` (stride 2, 64 ch),
``features.denseblock1`` .. ``features.denseblock3`` (strides 4, 8, 16; the block outputs before
each transition) and ``features.norm5`` (stride 32; batch-normed but, as in torchvision, not yet
ReLU'd: the head applies the ReLU).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision import models as tvm

from classify.models.features import FeatureInfo, last
from classify.models.registry import register_model
from classify.models.tv_wrapper import TorchvisionBackbone, run_named

__all__ = ["DenseNet", "densenet121", "densenet169", "densenet201"]

_PAPER = "https://arxiv.org/abs/1608.06993"
_TAP_NAMES = ("relu0", "denseblock1", "denseblock2", "denseblock3", "norm5")


class DenseNet(TorchvisionBackbone):
    """torchvision ``DenseNet`` at ``self.body`` with five taps (strides 2 to 32)."""

    stem_conv_path = "body.features.conv0"
    classifier_paths = ("body.classifier",)

    def __init__(self, builder: Callable[..., nn.Module], num_classes: int = 1000,
                 in_chans: int = 3, **kwargs: Any) -> None:
        super().__init__(builder(weights=None, num_classes=max(num_classes, 1), **kwargs))
        f = self.body.features
        channels = [f.conv0.out_channels] + [
            getattr(f, f"transition{i}").norm.num_features for i in (1, 2, 3)] + [
            f.norm5.num_features]
        self._order = tuple(name for name, _ in f.named_children())
        self._set_feature_info([FeatureInfo(f"features.{n}", c, 2 ** (i + 1))
                                for i, (n, c) in enumerate(zip(_TAP_NAMES, channels))])
        self._finish_init(num_classes, in_chans)

    def features(self, x: Tensor) -> OrderedDict[str, Tensor]:
        """``x: Tensor[N, C, H, W]`` -> five maps ``Tensor[N, C_i, H/s_i, W/s_i]``."""
        taps = {n: f"features.{n}" for n in _TAP_NAMES}
        return run_named(self.body.features, self._order, x, taps)[0]

    def forward_head(self, features: Mapping[str, Tensor]) -> Tensor:
        """``norm5`` -> ReLU -> global average pool -> linear -> ``Tensor[N, K]``."""
        x = F.adaptive_avg_pool2d(F.relu(last(features)), (1, 1))
        return self.body.classifier(torch.flatten(x, 1))


@register_model(min_input_size=32, paper=_PAPER)
def densenet121(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DenseNet:
    """DenseNet-121, 7,978,856 parameters at 1000 classes."""
    return DenseNet(tvm.densenet121, num_classes, in_chans, **kwargs)


@register_model(min_input_size=32, paper=_PAPER)
def densenet169(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DenseNet:
    """DenseNet-169, 14,149,480 parameters at 1000 classes."""
    return DenseNet(tvm.densenet169, num_classes, in_chans, **kwargs)


@register_model(min_input_size=32, paper=_PAPER)
def densenet201(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DenseNet:
    """DenseNet-201, 20,013,928 parameters at 1000 classes."""
    return DenseNet(tvm.densenet201, num_classes, in_chans, **kwargs)
