"""torchvision's Faster R-CNN state-dict layout, mapped to ours.

torchvision's ``backbone.body.<k>`` (an ``IntermediateLayerGetter``) is our
``backbone.body.body.<k>`` (ResNet) or ``backbone.body.body.features.<k>`` (MobileNet); every
other key is the same in both layouts.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

_TV_BODY = "backbone.body."
_OUR_BODIES = ("backbone.body.body.", "backbone.body.body.features.")


def is_torchvision_layout(state: Mapping[str, Tensor], own: Mapping[str, Tensor]) -> bool:
    """True if ``state`` has torchvision's backbone keys where ``own`` (ours) has nested ones."""
    theirs_nested = any(k.startswith(_OUR_BODIES[0]) for k in state)
    return (not theirs_nested and any(k.startswith(_TV_BODY) for k in state)
            and any(k.startswith(_OUR_BODIES[0]) for k in own))


def convert_torchvision_state_dict(state: Mapping[str, Tensor],
                                   own: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename torchvision's ``backbone.body.<k>`` keys to ours (the prefix under which ``own``,
    our model's state dict, has ``<k>``); every other key is the same in both layouts."""
    out = {}
    for key, value in state.items():
        if key.startswith(_TV_BODY):
            rest = key[len(_TV_BODY):]
            key = next((p + rest for p in _OUR_BODIES if p + rest in own), _OUR_BODIES[0] + rest)
        out[key] = value
    return out

