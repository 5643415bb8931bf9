"""MobileNet v1 (Howard et al., 2017): depthwise-separable convolutions, Table 1 of the paper.

A 3x3/2 stem (32 ch) and 13 depthwise-separable blocks (3x3 depthwise + BN + ReLU, then 1x1
pointwise + BN + ReLU), global average pooling and a linear classifier; ``width_mult`` is the
paper's width multiplier alpha.  At width 1.0 and 1000 classes: 4,231,976 parameters (the
trainable count of Keras' ``MobileNet``).

Taps: ``blocks.0`` (stride 2, 64 ch), ``blocks.2`` (4, 128), ``blocks.4`` (8, 256),
``blocks.10`` (16, 512), ``blocks.12`` (32, 1024).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn
from torchvision.ops.misc import Conv2dNormActivation

from classify.models.features import Backbone, FeatureInfo, last, run_sequential
from classify.models.registry import register_model

__all__ = ["MobileNetV1", "depthwise_separable", "mobilenet_v1"]

#: (output channels, stride) of the 13 depthwise-separable blocks (paper, Table 1)
BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
          (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
_TAPS = ((0, 2), (2, 4), (4, 8), (10, 16), (12, 32))


def depthwise_separable(cin: int, cout: int, stride: int) -> nn.Sequential:
    """3x3 depthwise conv (stride ``stride``) + BN + ReLU, then 1x1 conv + BN + ReLU."""
    return nn.Sequential(
        Conv2dNormActivation(cin, cin, 3, stride, groups=cin, activation_layer=nn.ReLU),
        Conv2dNormActivation(cin, cout, 1, activation_layer=nn.ReLU),
    )


class MobileNetV1(Backbone):
    """MobileNet v1 with modules ``stem``, ``blocks`` (13) and ``classifier``."""

    stem_conv_path = "stem.0"
    classifier_paths = ("classifier",)

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if not width_mult > 0:
            raise ValueError(f"MobileNetV1: width_mult must be > 0, got {width_mult!r}")
        width = [max(8, int(c * width_mult)) for c, _ in BLOCKS]
        cin = max(8, int(32 * width_mult))
        self.stem = Conv2dNormActivation(in_chans, cin, 3, 2, activation_layer=nn.ReLU)
        blocks = []
        for cout, (_, stride) in zip(width, BLOCKS):
            blocks.append(depthwise_separable(cin, cout, stride))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(cin, max(num_classes, 1))
        self._set_feature_info([FeatureInfo(f"blocks.{i}", width[i], s) for i, s in _TAPS])
        self.apply(_init)
        self._finish_init(num_classes, in_chans)

    def features(self, x: Tensor) -> OrderedDict[str, Tensor]:
        """``x: Tensor[N, C, H, W]`` -> five maps ``Tensor[N, C_i, H/s_i, W/s_i]``."""
        taps = [i for i, _ in _TAPS]
        return run_sequential(self.blocks, self.stem(x), taps, "blocks.")[1]

    def forward_head(self, features: Mapping[str, Tensor]) -> Tensor:
        """Last map -> global average pool -> dropout -> linear -> ``Tensor[N, K]``."""
        return self.classifier(self.dropout(last(features).mean((2, 3))))


def _init(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    elif isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, 0.0, 0.01)
        nn.init.zeros_(module.bias)


@register_model(min_input_size=32, paper="https://arxiv.org/abs/1704.04861")
def mobilenet_v1(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MobileNetV1:
    """MobileNet v1 (width 1.0), 4,231,976 parameters at 1000 classes."""
    return MobileNetV1(num_classes, in_chans, **kwargs)
