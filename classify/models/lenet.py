"""LeNet-5 (LeCun, Bottou, Bengio & Haffner, 1998, "Gradient-based learning applied to document
recognition", Fig. 2 and Table I), and a modern ReLU / max-pool variant.

``lenet5`` follows the paper's architecture on a 32x32 single-channel input:

===== ==================== ============== =========================================
layer maps                 trainable par. what
===== ==================== ============== =========================================
C1    6 @ 28x28            156            5x5 conv
S2    6 @ 14x14            12             2x2 sum x trainable coefficient + bias
C3    16 @ 10x10           1,516          5x5 conv, sparse connections of Table I
S4    16 @ 5x5             32             as S2
C5    120 @ 1x1            48,120         5x5 conv (a full connection at 32x32 input)
F6    84                   10,164         linear
out   10                   850            linear (the paper: fixed Euclidean RBF units)
===== ==================== ============== =========================================

60,850 parameters in all.  Choices, documented: the subsampling layers are trainable as in the
paper (``pooling="subsample"``; ``pooling="avg"`` gives plain average pooling with no
parameters and no squashing); every layer uses the paper's squashing function
``1.7159 * tanh(2a/3)``; weights start uniform in ``+-2.4 / fan_in`` (paper, Appendix C);
the output layer is a plain linear layer rather than the paper's RBF units with hand-designed
fixed codes, so that any ``num_classes`` works with a cross-entropy loss.

``lenet5_relu`` is the usual modern simplification: ReLU, 2x2 max-pool, fully connected C3.  It
has 61,706 parameters (156 + 2,416 + 48,120 + 10,164 + 850); that figure is often quoted for
"LeNet-5" but is not the paper's network.

Feature taps (strides are cumulative; the convolutions are unpadded, so a 32x32 input gives
28/14/10/5/1-pixel maps): ``C1`` (1, 6 ch), ``S2`` (2, 6), ``C3`` (2, 16), ``S4`` (4, 16),
``C5`` (4, 120).  ``features`` works on any input from 32 px; the classifier needs C5 to be 1x1,
i.e. a 32x32 input (pad 28x28 MNIST digits by 2 px, as the paper does).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from classify.models.features import Backbone, FeatureInfo, last
from classify.models.registry import register_model

__all__ = ["C3_TABLE", "LeNet5", "ScaledTanh", "Subsampling", "TableConv", "lenet5",
           "lenet5_relu"]

#: LeCun et al. 1998, Table I: the S2 maps each C3 map is connected to.
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)
_MNIST_MEAN, _MNIST_STD = (0.1307,), (0.3081,)


class ScaledTanh(nn.Module):
    """The paper's squashing function ``f(a) = 1.7159 * tanh(2a / 3)`` (Appendix A)."""

    def forward(self, x: Tensor) -> Tensor:
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


class Subsampling(nn.Module):
    """S2/S4: each output is the sum of a 2x2 block times a trainable per-map coefficient,
    plus a trainable per-map bias (2 parameters a map).  ``Tensor[N, C, H, W]`` ->
    ``Tensor[N, C, H/2, W/2]``.  The coefficient starts at 1/4 (an average)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), 0.25))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        summed = F.avg_pool2d(x, 2) * 4.0
        return summed * self.weight[:, None, None] + self.bias[:, None, None]


class TableConv(nn.Module):
    """A convolution whose output map ``j`` reads only the input maps ``table[j]``.

    Consecutive rows of equal length share one grouped convolution over the gathered input
    maps, so the parameters are exactly ``sum(len(row) * k * k + 1)`` (1,516 for C3).
    ``Tensor[N, C_in, H, W]`` -> ``Tensor[N, len(table), H - k + 1, W - k + 1]``.
    """

    def __init__(self, table: Sequence[Sequence[int]], kernel_size: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        self._index_names = []
        for i, (width, rows) in enumerate(itertools.groupby(table, key=len)):
            rows = list(rows)
            name = f"index{i}"
            self.register_buffer(name, torch.tensor(rows).flatten(), persistent=False)
            self._index_names.append(name)
            self.convs.append(nn.Conv2d(len(rows) * width, len(rows), kernel_size,
                                        groups=len(rows)))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([conv(x[:, getattr(self, name)])
                          for name, conv in zip(self._index_names, self.convs)], dim=1)


class LeNet5(Backbone):
    """LeNet-5 with the paper's layer names ``C1, S2, C3, S4, C5, F6, output``.

    Args:
        activation: ``"tanh"`` (the paper's scaled tanh) or ``"relu"``.
        pooling: ``"subsample"`` (trainable, then squashed), ``"avg"`` or ``"max"``.
        c3_table: connect C3 sparsely as in Table I (else fully).
    """

    stem_conv_path = "C1"
    classifier_paths = ("output",)

    def __init__(self, num_classes: int = 10, in_chans: int = 1, activation: str = "tanh",
                 pooling: str = "subsample", c3_table: bool = True) -> None:
        super().__init__()
        _check_choice("activation", activation, ("tanh", "relu"))
        _check_choice("pooling", pooling, ("subsample", "avg", "max"))
        self.act = ScaledTanh() if activation == "tanh" else nn.ReLU()
        self.pooling = pooling
        self.C1 = nn.Conv2d(in_chans, 6, 5)
        self.S2 = _pool(pooling, 6)
        self.C3 = TableConv(C3_TABLE, 5) if c3_table else nn.Conv2d(6, 16, 5)
        self.S4 = _pool(pooling, 16)
        self.C5 = nn.Conv2d(16, 120, 5)
        self.F6 = nn.Linear(120, 84)
        self.output = nn.Linear(84, max(num_classes, 1))
        if activation == "tanh":
            self.apply(_lecun_uniform)
        self._set_feature_info([FeatureInfo("C1", 6, 1), FeatureInfo("S2", 6, 2),
                                FeatureInfo("C3", 16, 2), FeatureInfo("S4", 16, 4),
                                FeatureInfo("C5", 120, 4)])
        self._finish_init(num_classes, in_chans)

    def _squash_pool(self, pool: nn.Module, x: Tensor) -> Tensor:
        x = pool(x)
        return self.act(x) if self.pooling == "subsample" else x

    def features(self, x: Tensor) -> OrderedDict[str, Tensor]:
        """``x: Tensor[N, C, H, W]``, H, W >= 32 -> C1 [N, 6, H-4, W-4] ... C5 [N, 120, ...]."""
        out: OrderedDict[str, Tensor] = OrderedDict()
        out["C1"] = x = self.act(self.C1(x))
        out["S2"] = x = self._squash_pool(self.S2, x)
        out["C3"] = x = self.act(self.C3(x))
        out["S4"] = x = self._squash_pool(self.S4, x)
        out["C5"] = self.act(self.C5(x))
        return out

    def forward_head(self, features: Mapping[str, Tensor]) -> Tensor:
        """C5 ``Tensor[N, 120, 1, 1]`` -> F6 (84) -> output ``Tensor[N, K]``."""
        c5 = last(features)
        if c5.shape[-2:] != (1, 1):
            raise ValueError(f"LeNet5 classifies 32x32 inputs (C5 must be 1x1); got a C5 map of "
                             f"{tuple(c5.shape[-2:])}, i.e. an input of about "
                             f"{tuple(4 * s + 28 for s in c5.shape[-2:])} px")
        return self.output(self.act(self.F6(torch.flatten(c5, 1))))


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"LeNet5: {what} must be one of {choices}, got {value!r}")


def _pool(kind: str, channels: int) -> nn.Module:
    if kind == "subsample":
        return Subsampling(channels)
    return nn.AvgPool2d(2) if kind == "avg" else nn.MaxPool2d(2)


def _lecun_uniform(module: nn.Module) -> None:
    """Uniform in ``+-2.4 / fan_in`` (LeCun et al. 1998, Appendix C); biases zero."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        fan_in = module.weight[0].numel()
        nn.init.uniform_(module.weight, -2.4 / fan_in, 2.4 / fan_in)
        nn.init.zeros_(module.bias)


_LENET = dict(min_input_size=32, input_size=32, in_chans=1, num_classes=10, mean=_MNIST_MEAN,
              std=_MNIST_STD, paper="http://yann.lecun.com/exdb/publis/pdf/lecun-01a.pdf")


@register_model(**_LENET)
def lenet5(num_classes: int = 10, in_chans: int = 1, **kwargs: Any) -> LeNet5:
    """LeNet-5 as in the paper (see module docstring): 60,850 parameters at 10 classes."""
    return LeNet5(num_classes, in_chans, **kwargs)


@register_model(**_LENET)
def lenet5_relu(num_classes: int = 10, in_chans: int = 1, **kwargs: Any) -> LeNet5:
    """LeNet-5 with ReLU, max-pooling and a fully connected C3: 61,706 parameters."""
    options = dict(activation="relu", pooling="max", c3_table=False) | kwargs
    return LeNet5(num_classes, in_chans, **options)
