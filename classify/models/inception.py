"""Inception v3 (Szegedy et al., 2015), wrapping torchvision's ``Inception3``.

Taps: ``Conv2d_2b_3x3`` (stride 2, 64 ch), ``Conv2d_4a_3x3`` (4, 192), ``Mixed_5d`` (8, 288),
``Mixed_6e`` (16, 768), ``Mixed_7c`` (32, 2048).  The convolutions are unpadded: a 299 input
gives 147/71/35/17/8-pixel maps.

The auxiliary classifier (``aux_logits=True``, the default) reads ``Mixed_6e``; in training mode
``model(x)`` returns ``AuxOutputs(logits, (aux,), (0.4,))`` (the 0.4 weight of the reference
TF-slim training), in eval mode and from ``forward_head`` the main logits.  The aux head needs a
``Mixed_6e`` map of at least 17x17, i.e. inputs of at least 299 px in training mode; build with
``aux_logits=False`` to train on small inputs (from 75 px).  Parameter count at 1000 classes:
27,161,264 with the aux head (torchvision's published figure), 23,834,568 without.  Built with
``aux_logits=False``, the model ignores aux-head weights found in a checkpoint.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from torchvision.models import inception_v3 as tv_inception_v3

from classify.models.features import FeatureInfo, last
from classify.models.outputs import AuxOutputs
from classify.models.registry import register_model
from classify.models.tv_wrapper import TorchvisionBackbone, run_named

__all__ = ["InceptionV3", "inception_v3"]

_ORDER = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
          "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
          "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c")
_INFO = (("Conv2d_2b_3x3", 64, 2), ("Conv2d_4a_3x3", 192, 4), ("Mixed_5d", 288, 8),
         ("Mixed_6e", 768, 16), ("Mixed_7c", 2048, 32))
AUX_WEIGHT = 0.4
AUX_MIN_MAP = 17  # InceptionAux: 5x5/3 average pool, then an unpadded 5x5 conv


class InceptionV3(TorchvisionBackbone):
    """torchvision ``Inception3`` at ``self.body``; see the module docstring for outputs."""

    stem_conv_path = "body.Conv2d_1a_3x3.conv"

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = True,
                 transform_input: bool = False, **kwargs: Any) -> None:
        if transform_input and in_chans != 3:
            raise ValueError(f"inception_v3: transform_input=True re-normalises RGB input; it "
                             f"needs in_chans=3, got {in_chans}")
        super().__init__(tv_inception_v3(weights=None, num_classes=max(num_classes, 1),
                                         aux_logits=aux_logits, transform_input=transform_input,
                                         init_weights=True, **kwargs))
        self.classifier_paths = ("body.fc",) + (("body.AuxLogits.fc",) if aux_logits else ())
        self._set_feature_info([FeatureInfo(*row) for row in _INFO])
        self._finish_init(num_classes, in_chans)

    def convert_state_dict(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """torchvision keys get ``"body."``; aux-head keys are dropped if built without it."""
        state = super().convert_state_dict(state)
        if self.body.AuxLogits is not None:
            return state
        return {k: v for k, v in state.items() if not k.startswith("body.AuxLogits.")}

    def features(self, x: Tensor) -> OrderedDict[str, Tensor]:
        """``x: Tensor[N, C, H, W]`` (H, W >= 75) -> five maps, strides 2 to 32."""
        taps = {name: name for name, _, _ in _INFO}
        return run_named(self.body, _ORDER, self.body._transform_input(x), taps)[0]

    def forward_head(self, features: Mapping[str, Tensor]) -> Tensor:
        """``Mixed_7c`` -> global average pool -> dropout -> fc -> main logits ``[N, K]``."""
        x = torch.flatten(self.body.dropout(self.body.avgpool(last(features))), 1)
        return self.body.fc(x)

    def forward(self, x: Tensor) -> Tensor | AuxOutputs:
        """Main logits ``Tensor[N, K]``; :class:`AuxOutputs` in training mode with aux head."""
        if not (self.training and self.body.AuxLogits is not None):
            return super().forward(x)
        feats = self.features(x)
        size = tuple(feats["Mixed_6e"].shape[-2:])
        if min(size) < AUX_MIN_MAP:
            raise ValueError(
                f"inception_v3: the auxiliary classifier needs a Mixed_6e map of at least "
                f"{AUX_MIN_MAP}x{AUX_MIN_MAP} (input >= 299 px) in training mode; input "
                f"{tuple(x.shape[-2:])} gave {size}. Build with aux_logits=False for small inputs.")
        aux = self.body.AuxLogits(feats["Mixed_6e"])
        return AuxOutputs(self.forward_head(feats), (aux,), (AUX_WEIGHT,))


@register_model(min_input_size=299, input_size=299, paper="https://arxiv.org/abs/1512.00567")
def inception_v3(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> InceptionV3:
    """Inception v3: 27,161,264 parameters at 1000 classes incl. the aux head (23,834,568 without).

    The default ``min_input_size`` (299) is set by the aux head in training mode; with
    ``aux_logits=False`` the model runs from 75 px.
    """
    return InceptionV3(num_classes, in_chans, **kwargs)
