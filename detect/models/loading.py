"""Build a registry detector from a training config, and rebuild a trained one from its checkpoint.

A checkpoint written by ``detect train`` holds the run's config (detector name, builder kwargs,
image size) and class names, so :func:`load_detector` needs nothing else: it rebuilds the
architecture through the registry and loads the saved weights (the EMA weights when the run
kept an EMA).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: Builder kwargs that only initialise weights (files); skipped when the weights come from a checkpoint.
INIT_WEIGHT_KWARGS = ("weights", "backbone_weights")


def build_detector(name: str, num_classes: int, image_size: int | None,
                   kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    """``get_detector(name, num_classes=..., image_size=..., **kwargs)`` with the builder's own
    errors (an unexpected keyword) turned into a ``ValueError`` naming the detector."""
    from detect.models.registry import get_detector

    try:
        return get_detector(name, num_classes=num_classes, image_size=image_size, **dict(kwargs or {}))
    except TypeError as exc:
        raise ValueError(f"cannot build detector {name!r} with detector_kwargs {dict(kwargs or {})}: {exc}") from exc


def input_sizes(image_size: int | Sequence[int] | None) -> tuple[int, ...]:
    """``image_size`` given as one size, several sizes or none, as a tuple (``()``: none)."""
    return (image_size,) if isinstance(image_size, int) else tuple(image_size or ())


def load_detector(checkpoint_path: str | Path, device: str | torch.device = "cpu",
                  image_size: int | Sequence[int] | None = None) -> tuple[nn.Module, list[str]]:
    """The detector saved in a training checkpoint, in eval mode on ``device``, and its class names.

    ``image_size`` replaces the input size of the checkpoint's config (and any ``test_size`` and
    ``extra_test_sizes``): the weights do not depend on it, so a model can be run at another size
    than it was trained at.  Several sizes (Faster R-CNN) run a multi-size test: the first is the
    input size, the others its ``extra_test_sizes``.

    Raises:
        FileNotFoundError: no file at ``checkpoint_path``.
        ValueError: not a project checkpoint, or one without a detector config
            (``detector``/``image_size`` keys) or class names, or weights that do not fit.
    """
    from classify.base.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint_path)
    config, names = ckpt.config, list(ckpt.class_names)
    if "detector" not in config or not names:
        raise ValueError(f"{checkpoint_path}: not a detector checkpoint (expected the config keys 'detector' "
                         f"and 'image_size' and class names; got config keys {sorted(config)[:10]})")
    kwargs = _rebuild_kwargs(dict(config.get("detector_kwargs") or {}), ckpt.extra)
    sizes = input_sizes(image_size)
    if sizes:
        kwargs.pop("test_size", None)
        kwargs.pop("extra_test_sizes", None)
        if len(sizes) > 1:
            kwargs["extra_test_sizes"] = list(sizes[1:])
        image_size = sizes[0]
    else:
        image_size = config.get("image_size")
    model = build_detector(config["detector"], len(names), image_size, kwargs)
    load_weights(model, ckpt.model, f"{checkpoint_path} (detector {config['detector']!r})")
    return model.to(device).eval(), names


def _rebuild_kwargs(kwargs: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """The training kwargs, minus initial-weight files that are not on this machine.

    A file that exists is passed again (so the architecture is built exactly as in training,
    e.g. frozen norm layers); its weights are then replaced by the checkpoint's.  A rescoring
    classifier (``rescore_with``) is rebuilt from the spec the checkpoint keeps (``extra``), so
    the detector file alone is enough.
    """
    rebuilt = {k: v for k, v in kwargs.items()
               if k not in INIT_WEIGHT_KWARGS or (isinstance(v, (str, Path)) and Path(v).is_file())}
    if "rescore_with" in kwargs:
        if "rescorer" not in extra:
            raise ValueError(f"the detector was trained with rescore_with={kwargs['rescore_with']!r} but "
                             f"its checkpoint has no rescorer spec (not written by detect train)")
        rebuilt["rescore_with"] = extra["rescorer"]
    return rebuilt


def load_weights(model: nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    """Load ``state`` into ``model``: every key must match, except BatchNorm ``num_batches_tracked``
    counters (absent when training used frozen norm layers, and unused in eval mode).

    Raises ``ValueError`` naming the first mismatched keys or shapes.
    """
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise ValueError(f"{where}: the weights do not fit the model: {_first_lines(exc)}") from None
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"{where}: the weights do not fit the model: missing keys {missing[:5]}, "
                         f"unexpected keys {unexpected[:5]}")


def _first_lines(exc: BaseException, n: int = 3) -> str:
    return " ".join(line.strip() for line in str(exc).strip().splitlines()[:n])
