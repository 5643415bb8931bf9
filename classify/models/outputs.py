"""Training-mode outputs of models with auxiliary classifiers (GoogLeNet, Inception v3).

In training mode (and only when built with ``aux_logits=True``) such a model returns
:class:`AuxOutputs` instead of a logits tensor; in eval mode it returns the main logits, and
``forward_head`` always returns the main logits.  :func:`classification_loss` handles both::

    out = model(images)                             # Tensor[N, K] or AuxOutputs
    loss = classification_loss(out, labels)         # CE(main) + sum(w_i * CE(aux_i))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor

__all__ = ["AuxOutputs", "classification_loss", "main_logits"]


class AuxOutputs(NamedTuple):
    """``logits: Tensor[N, K]`` of the main head, ``aux_logits``: one ``Tensor[N, K]`` per
    auxiliary head (in network order, shallowest first), ``aux_weights``: the loss weight the
    paper gives each (GoogLeNet 0.3 each, Inception v3 0.4)."""

    logits: Tensor
    aux_logits: tuple[Tensor, ...]
    aux_weights: tuple[float, ...]


def main_logits(output: Tensor | AuxOutputs) -> Tensor:
    """The main logits ``Tensor[N, K]`` of a model output (plain or :class:`AuxOutputs`)."""
    return output.logits if isinstance(output, AuxOutputs) else output


def classification_loss(
    output: Tensor | AuxOutputs,
    target: Tensor,
    criterion: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
) -> Tensor:
    """``criterion(main, target) + sum(w * criterion(aux, target))``; ``target: int64[N]``."""
    if not isinstance(output, AuxOutputs):
        return criterion(output, target)
    loss = criterion(output.logits, target)
    for weight, aux in zip(output.aux_weights, output.aux_logits, strict=True):
        loss = loss + weight * criterion(aux, target)
    return loss
