"""Build a registry detector from a training config, and rebuild a trained one from its checkpoint.

A checkpoint written by ``detect train`` holds the run's config (detector name, builder kwargs,
image size) and class names, so :func:`load_detector` needs nothing else: it rebuilds the
architecture through the registry and loads the saved weights (the EMA weights when the run
kept an EMA).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from classify.base.checkpoint import load_checkpoint, load_state_strict
from classify.base.device import resolve_device
from classify.base.paths import require_file

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
    load_state_strict(model, ckpt.model, f"{checkpoint_path} (detector {config['detector']!r})")
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


@dataclass(frozen=True)
class DetectorSpec:
    """Which detector to run, as ``detect eval`` and ``detect bench`` take it: a registry
    detector (with optional local weights) or a checkpoint written by ``detect train``.

    Attributes:
        name: registry name (see ``detect list``); exclusive with ``checkpoint``.
        checkpoint: a ``detect train`` checkpoint (``best.pt``/``last.pt``).
        weights: local weights for ``name`` (nothing is downloaded).
        image_size: input size(s) replacing the detector's own; several sizes (a checkpoint only)
            run a multi-size test (see :func:`load_detector`).
    """

    name: str | None = None
    checkpoint: Path | None = None
    weights: Path | None = None
    image_size: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if (self.name is None) == (self.checkpoint is None):
            raise ValueError("expected a registry detector name or a checkpoint, not both or neither")
        if self.checkpoint is not None and self.weights is not None:
            raise ValueError("--weights goes with --model; a checkpoint carries its own")
        if self.weights is not None:
            require_file(self.weights, "weights")
        if any(size <= 0 for size in self.image_size):
            raise ValueError(f"image size: expected positive numbers of pixels, got {list(self.image_size)}")
        if len(self.image_size) > 1 and self.checkpoint is None:
            raise ValueError(f"several image sizes ({list(self.image_size)}) go with --checkpoint (a multi-size "
                             "test); give --model one size")

    @property
    def label(self) -> str:
        """The registry name, or the checkpoint's path."""
        return self.name if self.name is not None else str(self.checkpoint)

    def load(self, device: str | torch.device = "cpu",
             class_names: Sequence[str] | None = None) -> tuple[nn.Module, list[str]]:
        """The detector in eval mode on ``device`` and its class names.

        ``class_names``: the classes it must predict (a dataset's); a registry detector is built
        with that many outputs, a checkpoint must have been trained on exactly these.
        """
        device = resolve_device(device)
        if self.checkpoint is not None:
            model, names = load_detector(self.checkpoint, device, self.image_size or None)
            if class_names is not None and list(names) != list(class_names):
                raise ValueError(f"{self.checkpoint} was trained on classes {_short(names)}, but the dataset has "
                                 f"{_short(class_names)}")
            return model, names
        from detect.models.registry import get_detector

        size = self.image_size[0] if self.image_size else None
        counts = {} if class_names is None else {"num_classes": len(class_names)}
        model = get_detector(self.name, image_size=size, weights=self.weights, **counts)
        own = getattr(model, "class_names", None)
        if class_names is not None and own is not None and len(own) != len(class_names):
            raise ValueError(f"model {self.name!r} predicts {len(own)} classes {_short(own)}, but the dataset has "
                             f"{len(class_names)}: {_short(class_names)}")
        names = list(class_names) if class_names is not None else list(own or [])
        return model.to(device).eval(), names


def _short(names: Sequence[str], n: int = 6) -> str:
    shown = ", ".join(map(str, names[:n]))
    return f"[{shown}{', ...' if len(names) > n else ''}]"
