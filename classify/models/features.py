"""The backbone contract: every model in the zoo is a :class:`Backbone`.

A backbone maps an image batch ``Tensor[N, C, H, W]`` to an ordered dict of feature maps (the
stages a detector can tap) and, through a classification head, to logits ``Tensor[N, K]``::

    feats = model.features(x)          # OrderedDict[name, Tensor[N, C_i, H_i, W_i]]
    logits = model.forward_head(feats)  # Tensor[N, num_classes]
    model(x) == model.forward_head(model.features(x))

``model.feature_info`` declares, in the same order as ``features()`` returns them, the name,
channel count and cumulative stride of each tapped map; strides never decrease.  The stride is
the product of the strides of every layer before the tap: growing the input by ``d`` pixels
grows that map by exactly ``d / stride`` pixels.  For models that pad "same" a ``H``-pixel
input (``H`` a multiple of the largest stride) gives maps of exactly ``H / stride`` rows; models
with unpadded convolutions (LeNet-5, AlexNet, ZFNet, Inception v3) give a few rows fewer.

Feature names follow the module names of the network (torchvision's, for wrapped models):
``"layer3"`` for a ResNet, ``"features.6"`` for the 7th child of a MobileNet v2's ``features``,
``"Mixed_6e"`` for Inception v3, ``"C3"`` for LeNet-5, so a name says where the map comes from.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from torch import Tensor, nn

__all__ = [
    "Backbone", "FeatureInfo", "check_feature_info", "last", "replace_conv_in_chans",
    "run_sequential",
]


@dataclass(frozen=True)
class FeatureInfo:
    """One tapped feature map: ``name`` (key in ``features()``), ``channels``, ``stride`` (px)."""

    name: str
    channels: int
    stride: int


def check_feature_info(info: Sequence[FeatureInfo], where: str) -> list[FeatureInfo]:
    """Validate a declared feature list (unique names, positive ints, non-decreasing strides)."""
    info = list(info)
    if not info:
        raise ValueError(f"{where}: feature_info is empty; expected at least one FeatureInfo")
    names = [f.name for f in info]
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: feature names must be unique, got {names}")
    for f in info:
        if f.channels <= 0 or f.stride <= 0:
            raise ValueError(f"{where}: {f} must have positive channels and stride")
    strides = [f.stride for f in info]
    if any(b < a for a, b in zip(strides, strides[1:])):
        raise ValueError(f"{where}: feature strides must never decrease, got {strides}")
    return info


class Backbone(nn.Module):
    """Base class of every classifier / backbone in the zoo.

    A subclass builds its layers, sets ``feature_info`` with :meth:`_set_feature_info`,
    implements :meth:`features` and :meth:`forward_head`, names its logit layers in
    ``classifier_paths`` (dotted paths of ``nn.Linear`` layers: main head first, auxiliary heads
    after) and its first convolution in ``stem_conv_path``, and ends ``__init__`` with
    :meth:`_finish_init`.  The base class then provides :meth:`reset_classifier`,
    :meth:`head_state_keys`, :meth:`replace_stem` and ``forward``.
    """

    #: dotted paths of the Linear layers producing logits (main head first, then aux heads)
    classifier_paths: tuple[str, ...] = ()
    #: dotted path of the first convolution (rebuilt when ``in_chans`` differs)
    stem_conv_path: str = ""

    feature_info: list[FeatureInfo]
    num_classes: int
    in_chans: int
    head_dims: dict[str, int]

    # -- the contract --------------------------------------------------------------------------
    def features(self, x: Tensor) -> OrderedDict[str, Tensor]:
        """Map ``x: Tensor[N, in_chans, H, W]`` to ``{name: Tensor[N, C_i, H_i, W_i]}``."""
        raise NotImplementedError

    def forward_head(self, features: Mapping[str, Tensor]) -> Tensor:
        """Map the dict from :meth:`features` to logits ``Tensor[N, num_classes]``.

        With ``num_classes == 0`` the result is the pre-logits vector ``Tensor[N, D]``.
        """
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """``x: Tensor[N, in_chans, H, W]`` -> logits ``Tensor[N, num_classes]``."""
        return self.forward_head(self.features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace every classifier layer (main and auxiliary) by a fresh ``num_classes`` one.

        ``num_classes == 0`` replaces them by ``nn.Identity`` so the head returns the
        pre-logits features ``Tensor[N, D]``.
        """
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
            raise ValueError(
                f"{type(self).__name__}.reset_classifier: num_classes must be an int >= 0, "
                f"got {num_classes!r}"
            )
        reference = next(self.parameters())
        for path, in_features in self.head_dims.items():
            new = nn.Linear(in_features, num_classes) if num_classes else nn.Identity()
            self.set_submodule(path, new.to(device=reference.device, dtype=reference.dtype))
        self.num_classes = num_classes

    # -- helpers for builders and the weight loader --------------------------------------------
    def _set_feature_info(self, info: Sequence[FeatureInfo]) -> None:
        self.feature_info = check_feature_info(info, type(self).__name__)

    def _finish_init(self, num_classes: int, in_chans: int) -> None:
        """Record head widths, rebuild the stem for ``in_chans``; ends a subclass ``__init__``.

        Builders construct heads with ``max(num_classes, 1)`` outputs; ``num_classes == 0`` then
        swaps them for ``nn.Identity`` here.
        """
        assert self.stem_conv_path and self.classifier_paths, "subclass must name stem and heads"
        self.head_dims = {p: self.get_submodule(p).in_features for p in self.classifier_paths}
        self.num_classes = num_classes
        if num_classes == 0:
            self.reset_classifier(0)
        self.replace_stem(in_chans)

    def replace_stem(self, in_chans: int) -> None:
        """Rebuild the first convolution for ``in_chans`` input channels (fresh weights)."""
        stem = self.get_submodule(self.stem_conv_path)
        if in_chans != stem.in_channels:
            self.set_submodule(self.stem_conv_path, replace_conv_in_chans(stem, in_chans))
        self.in_chans = in_chans

    def head_state_keys(self) -> list[str]:
        """State-dict keys of the classifier layers (main and aux)."""
        prefixes = tuple(p + "." for p in self.classifier_paths)
        return [k for k in self.state_dict() if k.startswith(prefixes)]

    def stem_state_key(self) -> str:
        """State-dict key of the stem convolution's weight."""
        return self.stem_conv_path + ".weight"

    def convert_state_dict(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Map a foreign state dict (e.g. torchvision layout) to this model's key names.

        The base implementation strips a DataParallel/DDP ``"module."`` prefix only.
        """
        return {_strip_prefix(k, "module."): v for k, v in state.items()}

    @property
    def num_features(self) -> int:
        """Channels of the last (deepest) feature map."""
        return self.feature_info[-1].channels


def _strip_prefix(key: str, prefix: str) -> str:
    return key[len(prefix):] if key.startswith(prefix) else key


def replace_conv_in_chans(conv: nn.Module, in_chans: int) -> nn.Conv2d:
    """A new ``nn.Conv2d`` like ``conv`` but reading ``in_chans`` channels (Kaiming init)."""
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"stem must be an nn.Conv2d to change in_chans, got {type(conv).__name__}")
    if not isinstance(in_chans, int) or isinstance(in_chans, bool) or in_chans <= 0:
        raise ValueError(f"in_chans must be a positive int, got {in_chans!r}")
    if conv.groups != 1:
        raise ValueError(f"cannot change in_chans of a grouped stem conv (groups={conv.groups})")
    new = type(conv)(  # keeps Conv2d subclasses such as TF-"SAME" padded convs
        in_chans, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, 1, conv.bias is not None, conv.padding_mode,
        device=conv.weight.device, dtype=conv.weight.dtype,
    )
    if new.weight.device.type != "meta":
        nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
        if new.bias is not None:
            nn.init.zeros_(new.bias)
    return new


def run_sequential(
    seq: nn.Sequential, x: Tensor, taps: Sequence[int], prefix: str
) -> tuple[Tensor, OrderedDict[str, Tensor]]:
    """Run ``seq`` on ``x: Tensor[N, C, H, W]``, keeping the outputs of children ``taps``.

    Returns the final output and ``{f"{prefix}{i}": output of seq[i]}`` in order of ``i``.
    """
    out: OrderedDict[str, Tensor] = OrderedDict()
    wanted = set(taps)
    for i, layer in enumerate(seq):
        x = layer(x)
        if i in wanted:
            out[f"{prefix}{i}"] = x
    return x, out


def last(features: Mapping[str, Tensor]) -> Tensor:
    """The deepest map of a ``features()`` dict (the one the classification head reads)."""
    if not features:
        raise ValueError("forward_head: got an empty features dict; expected features(x)")
    return next(reversed(features.values()))

