"""GoogLeNet / Inception v1 (Szegedy et al., 2014) with its two auxiliary classifiers.

Wraps torchvision's ``GoogLeNet``.  Taps: ``conv1`` (stride 2, 64 ch), ``conv3`` (4, 192),
``inception3b`` (8, 480), ``inception4e`` (16, 832), ``inception5b`` (32, 1024).

Auxiliary classifiers (``aux_logits=True``, the default) read ``inception4a`` and
``inception4d``.  In training mode ``model(x)`` returns
``AuxOutputs(logits, (aux1, aux2), (0.3, 0.3))`` so the loss can weight them 0.3 as in the paper
(:func:`classify.models.outputs.classification_loss`); in eval mode, and from ``forward_head`` always,
it returns the main logits.  The aux heads hold 6,379,984 parameters at 1000 classes on top of
the 6,624,904 of the network proper (torchvision's published count excludes them).  Built with
``aux_logits=False``, the model ignores aux-head weights found in a checkpoint.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from torchvision.models import googlenet as tv_googlenet

from classify.models.features import FeatureInfo, last
from classify.models.outputs import AuxOutputs
from classify.models.registry import register_model
from classify.models.tv_wrapper import TorchvisionBackbone, run_named

__all__ = ["GoogLeNet", "googlenet"]

_ORDER = ("conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b",
          "maxpool3", "inception4a", "inception4b", "inception4c", "inception4d", "inception4e",
          "maxpool4", "inception5a", "inception5b")
_TAPS = {n: n for n in ("conv1", "conv3", "inception3b", "inception4e", "inception5b")}
_AUX_INPUTS = ("inception4a", "inception4d")
AUX_WEIGHT = 0.3


class GoogLeNet(TorchvisionBackbone):
    """torchvision ``GoogLeNet`` at ``self.body``; see the module docstring for outputs."""

    stem_conv_path = "body.conv1.conv"

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = True,
                 transform_input: bool = False, **kwargs: Any) -> None:
        if transform_input and in_chans != 3:
            raise ValueError(f"googlenet: transform_input=True re-normalises RGB input; it needs "
                             f"in_chans=3, got {in_chans}")
        super().__init__(tv_googlenet(weights=None, num_classes=max(num_classes, 1),
                                      aux_logits=aux_logits, transform_input=transform_input,
                                      init_weights=True, **kwargs))
        self.classifier_paths = ("body.fc",) + (
            ("body.aux1.fc2", "body.aux2.fc2") if aux_logits else ())
        self._set_feature_info([FeatureInfo(n, c, s) for n, c, s in (
            ("conv1", 64, 2), ("conv3", 192, 4), ("inception3b", 480, 8),
            ("inception4e", 832, 16), ("inception5b", 1024, 32))])
        self._finish_init(num_classes, in_chans)

    def convert_state_dict(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """torchvision keys get ``"body."``; aux-head keys are dropped if built without them."""
        state = super().convert_state_dict(state)
        if self.body.aux_logits:
            return state
        return {k: v for k, v in state.items() if not k.startswith(("body.aux1.", "body.aux2."))}

    def _run(self, x: Tensor, keep: tuple[str, ...] = ()) -> tuple[OrderedDict, dict]:
        return run_named(self.body, _ORDER, self.body._transform_input(x), _TAPS, keep)

    def features(self, x: Tensor) -> OrderedDict[str, Tensor]:
        """``x: Tensor[N, C, H, W]`` -> five maps, strides 2 to 32 (see module docstring)."""
        return self._run(x)[0]

    def forward_head(self, features: Mapping[str, Tensor]) -> Tensor:
        """``inception5b`` -> global average pool -> dropout -> fc -> main logits ``[N, K]``."""
        x = torch.flatten(self.body.avgpool(last(features)), 1)
        return self.body.fc(self.body.dropout(x))

    def forward(self, x: Tensor) -> Tensor | AuxOutputs:
        """Main logits ``Tensor[N, K]``; :class:`AuxOutputs` in training mode with aux heads."""
        if not (self.training and self.body.aux_logits):
            return super().forward(x)
        feats, kept = self._run(x, keep=_AUX_INPUTS)
        aux = (self.body.aux1(kept["inception4a"]), self.body.aux2(kept["inception4d"]))
        return AuxOutputs(self.forward_head(feats), aux, (AUX_WEIGHT, AUX_WEIGHT))


@register_model(min_input_size=32, paper="https://arxiv.org/abs/1409.4842")
def googlenet(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> GoogLeNet:
    """GoogLeNet: 6,624,904 parameters at 1000 classes without the aux heads (13,004,888 with)."""
    return GoogLeNet(num_classes, in_chans, **kwargs)
