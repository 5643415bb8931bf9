"""ResNet-18/34/50/101/152 (He et al., 2015) and ResNeXt-50 32x4d (Xie et al., 2016).

Wraps torchvision's ``ResNet``.  Taps: ``stem`` (after conv1/bn1/relu, stride 2, 64 ch) and
``layer1``..``layer4`` (strides 4, 8, 16, 32; 64..512 channels times the block expansion: 1 for
ResNet-18/34, 4 for the bottleneck models).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torchvision import models as tvm

from classify.models.features import FeatureInfo, last
from classify.models.registry import register_model
from classify.models.tv_wrapper import TorchvisionBackbone, run_named

__all__ = [
    "ResNet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
]

_ORDER = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
_TAPS = {"relu": "stem", "layer1": "layer1", "layer2": "layer2", "layer3": "layer3",
         "layer4": "layer4"}
_RESNET = "https://arxiv.org/abs/1512.03385"


class ResNet(TorchvisionBackbone):
    """torchvision ``ResNet`` at ``self.body`` with taps ``stem``, ``layer1``..``layer4``."""

    stem_conv_path = "body.conv1"
    classifier_paths = ("body.fc",)

    def __init__(self, builder: Callable[..., nn.Module], num_classes: int = 1000,
                 in_chans: int = 3, **kwargs: Any) -> None:
        super().__init__(builder(weights=None, num_classes=max(num_classes, 1), **kwargs))
        expansion = type(self.body.layer1[0]).expansion
        info = [FeatureInfo("stem", self.body.conv1.out_channels, 2)]
        info += [FeatureInfo(f"layer{i + 1}", 64 * 2**i * expansion, 4 * 2**i) for i in range(4)]
        self._set_feature_info(info)
        self._finish_init(num_classes, in_chans)

    def features(self, x: Tensor) -> OrderedDict[str, Tensor]:
        """``x: Tensor[N, C, H, W]`` -> ``stem`` [N, 64, H/2, W/2] .. ``layer4`` [.., H/32, ..]."""
        return run_named(self.body, _ORDER, x, _TAPS)[0]

    def forward_head(self, features: Mapping[str, Tensor]) -> Tensor:
        """``layer4`` -> global average pool -> fc -> ``Tensor[N, K]``."""
        return self.body.fc(torch.flatten(self.body.avgpool(last(features)), 1))


@register_model(min_input_size=32, paper=_RESNET)
def resnet18(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-18, 11,689,512 parameters at 1000 classes."""
    return ResNet(tvm.resnet18, num_classes, in_chans, **kwargs)


@register_model(min_input_size=32, paper=_RESNET)
def resnet34(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-34, 21,797,672 parameters at 1000 classes."""
    return ResNet(tvm.resnet34, num_classes, in_chans, **kwargs)


@register_model(min_input_size=32, paper=_RESNET)
def resnet50(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-50 (v1.5: stride in the 3x3 conv), 25,557,032 parameters at 1000 classes."""
    return ResNet(tvm.resnet50, num_classes, in_chans, **kwargs)


@register_model(min_input_size=32, paper=_RESNET)
def resnet101(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-101, 44,549,160 parameters at 1000 classes."""
    return ResNet(tvm.resnet101, num_classes, in_chans, **kwargs)


@register_model(min_input_size=32, paper=_RESNET)
def resnet152(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-152, 60,192,808 parameters at 1000 classes."""
    return ResNet(tvm.resnet152, num_classes, in_chans, **kwargs)


@register_model(min_input_size=32, paper="https://arxiv.org/abs/1611.05431")
def resnext50_32x4d(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNeXt-50 (32 groups x 4 channels), 25,028,904 parameters at 1000 classes."""
    return ResNet(tvm.resnext50_32x4d, num_classes, in_chans, **kwargs)
