"""Wrapping torchvision classifiers as zoo backbones.

The torchvision model lives unchanged at ``self.body``, so a torchvision state dict maps to the
wrapper by prefixing every key with ``"body."`` (:meth:`TorchvisionBackbone.convert_state_dict`),
and the wrapper's ``forward`` equals torchvision's ``forward`` for the same weights.  The wrapper
only adds the contract: named feature taps, ``forward_head`` and ``reset_classifier``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from classify.models.features import Backbone, FeatureInfo, run_sequential

__all__ = [
    "SequentialBackbone", "TorchvisionBackbone", "channels_upto", "out_channels", "run_named",
]

BODY = "body."


class TorchvisionBackbone(Backbone):
    """A torchvision classifier held at ``self.body``; state-dict keys are ``"body." + key``."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def convert_state_dict(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Accept this wrapper's keys or torchvision's (which lack the ``"body."`` prefix)."""
        state = super().convert_state_dict(state)
        if any(k.startswith(BODY) for k in state):
            return state
        return {BODY + k: v for k, v in state.items()}


class SequentialBackbone(TorchvisionBackbone):
    """A torchvision model whose stages are the children of ``body.features`` (an
    ``nn.Sequential``); ``taps`` are ``(child index, cumulative stride)`` pairs and the feature
    names are ``"features.<index>"``.
    """

    def __init__(self, body: nn.Module, taps: Sequence[tuple[int, int]],
                 channels: Sequence[int] | None = None) -> None:
        super().__init__(body)
        self.tap_indices = tuple(i for i, _ in taps)
        seq = body.features
        channels = channels or [channels_upto(seq, i) for i in self.tap_indices]
        self._set_feature_info([FeatureInfo(f"features.{i}", c, s)
                                for (i, s), c in zip(taps, channels)])

    def features(self, x: Tensor) -> OrderedDict[str, Tensor]:
        """``x: Tensor[N, C, H, W]`` -> ``{"features.<i>": Tensor[N, C_i, H/s_i, W/s_i]}``."""
        return run_sequential(self.body.features, x, self.tap_indices, "features.")[1]


def run_named(
    module: nn.Module, order: Sequence[str], x: Tensor, taps: Mapping[str, str],
    keep: Sequence[str] = (),
) -> tuple[OrderedDict[str, Tensor], dict[str, Tensor]]:
    """Apply ``module``'s children named in ``order`` one after another to ``x``.

    Returns ``{taps[name]: output}`` for tapped children (in order) and ``{name: output}`` for
    the children named in ``keep`` (e.g. the inputs of auxiliary classifiers).
    """
    feats: OrderedDict[str, Tensor] = OrderedDict()
    kept: dict[str, Tensor] = {}
    for name in order:
        x = getattr(module, name)(x)
        if name in taps:
            feats[taps[name]] = x
        if name in keep:
            kept[name] = x
    return feats, kept


def out_channels(module: nn.Module) -> int | None:
    """Output channels of a block: its ``out_channels`` attribute, else those of its last
    conv/linear layer; ``None`` for channel-preserving layers (activations, pools, norms)."""
    value = getattr(module, "out_channels", None)
    if isinstance(value, int):
        return value
    for sub in reversed(list(module.modules())):
        if isinstance(sub, nn.Conv2d):
            return sub.out_channels
        if isinstance(sub, nn.Linear):
            return sub.out_features
    return None


def channels_upto(seq: nn.Sequential, index: int) -> int:
    """Channels of the output of ``seq[index]`` (looking back past channel-preserving layers)."""
    for i in range(index, -1, -1):
        channels = out_channels(seq[i])
        if channels is not None:
            return channels
    raise TypeError(f"no conv/linear layer in {type(seq).__name__}[:{index + 1}]")
