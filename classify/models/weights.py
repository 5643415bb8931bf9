"""Load local weights into a zoo model, strictly, with errors that name the offending keys.

Accepted files (read with ``torch.load(weights_only=True)``):

* a plain state dict ``{key: Tensor}``,
* a checkpoint dict holding one under ``"model"``, ``"state_dict"`` or ``"model_state_dict"``
  (the project's own checkpoints, Lightning, most training scripts).

Keys may be in this zoo's layout or in the layout of the library the model wraps (torchvision,
and timm where its names coincide, e.g. ResNet/DenseNet); ``model.convert_state_dict`` maps them.
Rules, applied after mapping:

* a ``"module."`` prefix (DataParallel / DDP) is stripped;
* if the checkpoint's classifier has a different number of classes than the model (or the
  model has none, ``num_classes=0``), every classifier key (main and auxiliary heads) is skipped
  and those layers keep their fresh initialisation; everything else must match;
* if the stem convolution reads a different number of input channels, its weight is adapted:
  summed over the channels for a 1-channel model, else tiled and rescaled (as timm does);
* anything else that does not match (missing keys, unexpected keys, shape mismatches) raises
  ``ValueError`` naming the first few keys of each kind and their counts; nothing is loaded.
  A missing BatchNorm ``num_batches_tracked`` counter is not an error (old torchvision files).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from classify.base.checkpoint import load_state_strict, read_torch_file, state_dict_from
from classify.models.features import Backbone

__all__ = ["LoadReport", "adapt_stem_weight", "load_weights", "read_state_dict"]


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_weights` did: keys left at their init, keys adapted to the model."""

    source: str
    skipped_keys: tuple[str, ...] = ()
    adapted_keys: tuple[str, ...] = ()


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read a state dict (plain, or nested under ``"model"``/``"state_dict"``) from ``path``."""
    return state_dict_from(read_torch_file(path), str(path))


def load_weights(
    model: Backbone, source: str | Path | Mapping[str, Tensor]
) -> LoadReport:
    """Load ``source`` (a file path or a state dict) into ``model`` following the module rules."""
    where = str(source) if isinstance(source, (str, Path)) else "state dict"
    raw = read_state_dict(source) if isinstance(source, (str, Path)) else state_dict_from(source, where)
    state = model.convert_state_dict(raw)
    own = model.state_dict()
    skipped = _drop_foreign_head(model, state, own)
    adapted = _adapt_stem(model, state, own)
    load_state_strict(model, state, where, keep=skipped)
    return LoadReport(where, tuple(skipped), tuple(adapted))


def _drop_foreign_head(model: Backbone, state: dict, own: Mapping[str, Tensor]) -> list[str]:
    """Drop the checkpoint's classifier keys if its class count differs from the model's."""
    main = model.classifier_paths[0] + ".weight"
    if main not in state:
        return []
    if main in own and own[main].shape == state[main].shape:
        return []
    prefixes = tuple(p + "." for p in model.classifier_paths)
    for key in [k for k in state if k.startswith(prefixes)]:
        del state[key]
    return model.head_state_keys()


def _adapt_stem(model: Backbone, state: dict, own: Mapping[str, Tensor]) -> list[str]:
    key = model.stem_state_key()
    if key not in state or key not in own:
        return []
    theirs, mine = state[key], own[key]
    only_inputs_differ = (theirs.dim() == 4 and theirs.shape[1] != mine.shape[1]
                          and theirs.shape[0] == mine.shape[0]
                          and theirs.shape[2:] == mine.shape[2:])
    if not only_inputs_differ:
        return []
    state[key] = adapt_stem_weight(theirs, mine.shape[1])
    return [key]


def adapt_stem_weight(weight: Tensor, in_chans: int) -> Tensor:
    """Adapt a conv weight ``Tensor[O, C, k, k]`` to ``Tensor[O, in_chans, k, k]``.

    One channel: sum over ``C`` (a grey image equals an RGB image with equal channels).
    Otherwise: tile the ``C`` channels and rescale by ``C / in_chans`` to keep activations.
    """
    channels = weight.shape[1]
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = -(-in_chans // channels)
    return weight.repeat(1, reps, 1, 1)[:, :in_chans] * (channels / in_chans)
