"""Looking inside a backbone: first-layer filters and the feature maps of a stage.

    >>> from classify import get_model
    >>> from classify.inspect.viz import save_filter_grid, save_feature_maps, prepare_image
    >>> model = get_model("efficientnet_lite0", weights="imagenet")
    >>> save_filter_grid(model, "runs/viz/filters.png")        # 32 RGB 3x3 filters
    >>> x, shown = prepare_image("photo.jpg", 224, (0.5,) * 3, (0.5,) * 3)
    >>> save_feature_maps(model, x, "blocks.0", "runs/viz/blocks.0.png", display=shown)

:func:`load_model` builds what ``classify viz`` is given: a registry name (with optional
``weights``: a packaged tag or a state-dict file), or a checkpoint file written by
:func:`classify.base.checkpoint.save_checkpoint`.  Checkpoint contract: ``config["model"]`` is the
registry name (or a mapping whose ``"name"`` is), ``config["num_classes"]`` the number of
logits (default: ``len(class_names)`` if the checkpoint has class names, else the registry's)
and ``config["in_chans"]`` the input channels (default: the registry's); the same keys are
also read from the ``config["model"]`` mapping.  The weights are loaded strictly
(:func:`classify.models.weights.load_weights`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from classify.base.paths import require_file
from classify.models.features import Backbone

if TYPE_CHECKING:
    from classify.base.checkpoint import Checkpoint

__all__ = [
    "feature_maps", "filter_grid", "first_conv", "first_layer_filters", "load_model",
    "prepare_image", "save_feature_maps", "save_filter_grid",
]


# -- first-layer filters ---------------------------------------------------------------------

def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """``(path, conv)`` of the first convolution: ``model.stem_conv_path`` for a zoo
    :class:`Backbone`, else the first ``nn.Conv2d`` in definition order."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
    path = getattr(model, "stem_conv_path", "")
    if path and isinstance(model.get_submodule(path), nn.Conv2d):
        return path, model.get_submodule(path)
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    raise ValueError(f"{type(model).__name__} has no nn.Conv2d layer to show filters of")


def first_layer_filters(model: nn.Module) -> Tensor:
    """The first convolution's weights, a detached CPU float ``Tensor[out, in/groups, kh, kw]``."""
    return first_conv(model)[1].weight.detach().float().cpu().clone()


def filter_grid(weights: Tensor, padding: int = 1) -> Tensor:
    """Tile filters ``Tensor[N, C, kh, kw]`` into one RGB image ``Tensor[3, H, W]`` in [0, 1].

    Each filter is min-max normalised on its own (so weak and strong filters are equally
    visible).  ``C == 3`` is shown as RGB (the zoo's input order), ``C == 1`` as gray, any
    other ``C`` as the gray mean over its input channels.  ``ceil(sqrt(N))`` filters a row,
    separated by ``padding`` white pixels.
    """
    from torchvision.utils import make_grid

    if not isinstance(weights, Tensor) or weights.dim() != 4:
        shape = tuple(weights.shape) if isinstance(weights, Tensor) else type(weights).__name__
        raise ValueError(f"filter_grid: expected conv weights Tensor[N, C, kh, kw], got {shape}")
    w = weights.detach().float().cpu()
    if w.shape[1] != 3:
        w = w.mean(1, keepdim=True).expand(-1, 3, -1, -1)
    lo = w.amin((1, 2, 3), keepdim=True)
    span = (w.amax((1, 2, 3), keepdim=True) - lo).clamp_min(1e-12)
    nrow = math.ceil(math.sqrt(w.shape[0]))
    return make_grid((w - lo) / span, nrow=nrow, padding=padding, pad_value=1.0)


def save_filter_grid(model: nn.Module, path: str | Path) -> Path:
    """Save the first convolution's filters as a PNG grid (see :func:`filter_grid`)."""
    from matplotlib.figure import Figure

    name, conv = first_conv(model)
    grid = filter_grid(conv.weight)
    n, c, kh, kw = conv.weight.shape
    fig = Figure(figsize=(6, 6 * grid.shape[1] / grid.shape[2] + 0.5), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_title(f"{type(model).__name__} {name}: {n} filters {c}x{kh}x{kw}")
    ax.axis("off")
    return _save(fig, path)


# -- feature maps ----------------------------------------------------------------------------

def feature_maps(model: Backbone, image: Tensor, stage: str | None = None) -> Tensor:
    """The maps ``Tensor[C_i, H_i, W_i]`` of feature ``stage`` for one image.

    Args:
        model: a zoo :class:`Backbone` (has ``features`` and ``feature_info``); it runs in eval
            mode without gradients, its training mode is restored afterwards.
        image: the normalised input ``Tensor[C, H, W]`` or ``Tensor[1, C, H, W]``
            (:func:`prepare_image` makes one).
        stage: a name of ``model.feature_info`` (default: the first, highest-resolution one).
    """
    names = _stage_names(model)
    stage = names[0] if stage is None else stage
    if stage not in names:
        import difflib

        close = difflib.get_close_matches(str(stage), names, n=1, cutoff=0.4)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown stage {stage!r} for {type(model).__name__}{hint} "
                         f"(stages: {', '.join(names)})")
    x = _batch_of_one(image, model)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            return model.features(x)[stage][0].float().cpu()
    finally:
        model.train(was_training)


def save_feature_maps(model: Backbone, image: Tensor, stage: str | None, path: str | Path, *,
                      channels: int = 16, display: Tensor | None = None) -> Path:
    """Save the first ``channels`` maps of ``stage`` as a PNG grid (each map min-max scaled).

    ``display`` (``Tensor[3 or 1, H, W]`` in [0, 1]) is drawn first, as the input a reader sees.
    """
    from matplotlib.figure import Figure

    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"save_feature_maps: channels must be an int >= 1, got {channels!r}")
    stage = _stage_names(model)[0] if stage is None else stage
    maps = feature_maps(model, image, stage)[:channels]
    panels = ([("input", display)] if display is not None else [])
    panels += [(f"ch {i}", m[None]) for i, m in enumerate(maps)]
    cols = math.ceil(math.sqrt(len(panels)))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(2.2 * cols, 2.2 * rows + 0.5), layout="constrained")
    fig.suptitle(f"{type(model).__name__} {stage}: {maps.shape[0]} of "
                 f"{feature_maps_channels(model, stage)} maps, {tuple(maps.shape[1:])} px")
    for ax, (title, panel) in zip(fig.subplots(rows, cols, squeeze=False).flat, panels):
        _show_panel(ax, title, panel)
    for ax in fig.axes[len(panels):]:
        ax.set_visible(False)
    return _save(fig, path)


def feature_maps_channels(model: Backbone, stage: str) -> int:
    """Declared channels of ``stage`` (from ``feature_info``)."""
    return next(f.channels for f in model.feature_info if f.name == stage)


def _show_panel(ax: Any, title: str, panel: Tensor) -> None:
    if title == "input":
        rgb = panel.expand(3, -1, -1) if panel.shape[0] == 1 else panel
        ax.imshow(rgb.permute(1, 2, 0).clamp(0, 1).numpy())
    else:
        m = panel[0]
        ax.imshow(((m - m.min()) / (m.max() - m.min()).clamp_min(1e-12)).numpy(), cmap="viridis",
                  interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def _stage_names(model: nn.Module) -> list[str]:
    info = getattr(model, "feature_info", None)
    if not callable(getattr(model, "features", None)) or not info:
        raise TypeError(f"expected a zoo Backbone with features() and feature_info, "
                        f"got {type(model).__name__}")
    return [f.name for f in info]


def _batch_of_one(image: Tensor, model: nn.Module) -> Tensor:
    if not isinstance(image, Tensor) or image.dim() not in (3, 4) or (image.dim() == 4 and len(image) != 1):
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"expected one image Tensor[C, H, W] or Tensor[1, C, H, W], got {shape}")
    x = image if image.dim() == 4 else image[None]
    in_chans = getattr(model, "in_chans", x.shape[1])
    if x.shape[1] != in_chans:
        raise ValueError(f"{type(model).__name__} reads {in_chans}-channel images, "
                         f"got {x.shape[1]} channels")
    ref = next(model.parameters())
    return x.to(device=ref.device, dtype=ref.dtype)


# -- inputs ----------------------------------------------------------------------------------

def prepare_image(path: str | Path, size: int, mean: Sequence[float], std: Sequence[float],
                  in_chans: int = 3) -> tuple[Tensor, Tensor]:
    """Read ``path`` for a model: ``(normalised Tensor[C, size, size], shown Tensor[C, ., .])``.

    The shorter side is resized to ``size`` pixels (area interpolation) and the centre square
    cropped; RGB channel order; ``in_chans == 1`` converts to gray.  The second tensor is the
    same crop in [0, 1] for display; the first is ``(shown - mean) / std``.
    """
    import cv2

    if in_chans not in (1, 3):
        raise ValueError(f"prepare_image: only 1- or 3-channel models take photos, got {in_chans}")
    if len(mean) != in_chans or len(std) != in_chans:
        raise ValueError(f"prepare_image: mean/std need {in_chans} values, got {mean} / {std}")
    from classify.base.images import check_image_file

    path = Path(path)
    require_file(path, "image")
    check_image_file(path)  # the pixel limit, from the header, before OpenCV decodes
    pixels = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if in_chans == 1 else cv2.IMREAD_COLOR)
    if pixels is None:
        raise ValueError(f"{path}: not an image file OpenCV can decode")
    if in_chans == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    shown = _resize_crop(torch.from_numpy(pixels).float().div_(255.0), size)
    norm = (shown - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    return norm, shown


def _resize_crop(pixels: Tensor, size: int) -> Tensor:
    """``[H, W]`` or ``[H, W, 3]`` in [0, 1] -> ``[C, size, size]``: shorter side to ``size``."""
    import torch.nn.functional as F

    chw = pixels[None] if pixels.dim() == 2 else pixels.permute(2, 0, 1)
    h, w = chw.shape[1:]
    scale = size / min(h, w)
    new = (max(size, round(h * scale)), max(size, round(w * scale)))
    resized = F.interpolate(chw[None], size=new, mode="area" if scale < 1 else "bilinear")[0]
    top, left = (new[0] - size) // 2, (new[1] - size) // 2
    return resized[:, top:top + size, left:left + size].clamp(0, 1).contiguous()


def load_model(spec: str | Path, weights: str | Path | None = None) -> tuple[Backbone, str]:
    """Build a model from a registry name (``weights``: tag or file) or a checkpoint file.

    Returns ``(model, registry name)``; see the module docstring for the checkpoint contract.
    """
    from classify.models.registry import get_model

    path = Path(spec)
    if not path.is_file():
        if any(ch in str(spec) for ch in "/\\") or path.suffix in (".pt", ".pth", ".ckpt"):
            raise FileNotFoundError(f"checkpoint not found: {spec}")
        return get_model(str(spec), weights=weights), str(spec)
    if weights is not None:
        raise ValueError(f"--weights is for registry names; {path} is a checkpoint with its own")
    return _from_checkpoint(path)


def _from_checkpoint(path: Path) -> tuple[Backbone, str]:
    from classify.base.checkpoint import load_checkpoint

    return model_from_checkpoint(load_checkpoint(path), path)


def model_from_checkpoint(ckpt: Checkpoint, path: str | Path) -> tuple[Backbone, str]:
    """The model of an already loaded checkpoint (``path`` names it in errors), and its registry name."""
    from classify.models.registry import get_model, get_model_entry
    from classify.models.weights import load_weights

    model_cfg = ckpt.config.get("model")
    sub = model_cfg if isinstance(model_cfg, Mapping) else {}
    name = sub.get("name") if sub else model_cfg
    if not isinstance(name, str):
        raise ValueError(f"{path}: checkpoint config needs 'model' (a registry name, or a mapping "
                         f"with 'name'), got {model_cfg!r}")
    entry = get_model_entry(name)
    default_classes = len(ckpt.class_names) or entry.num_classes
    num_classes = sub.get("num_classes", ckpt.config.get("num_classes", default_classes))
    in_chans = sub.get("in_chans", ckpt.config.get("in_chans", entry.in_chans))
    model = get_model(name, num_classes=num_classes, in_chans=in_chans)
    load_weights(model, ckpt.model)
    return model, name


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
