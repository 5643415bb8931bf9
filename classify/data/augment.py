"""Per-batch preprocessing and augmentation, run on the model's device.

:class:`BatchTransform` turns a batch of ``uint8 [N, C, H, W]`` images (as the datasets of
:mod:`classify.data.datasets` yield them) into the model's input ``float32 [N, in_chans, S, S]``:

1. scale to [0, 1];
2. match channels: grey repeated to 3 channels (e.g. an ImageNet-pretrained model on
   Fashion-MNIST), colour averaged to 1 (ITU-R 601 luma weights);
3. reach ``S x S``: bilinear resize (antialiased when shrinking), or with ``fit_mode="pad"`` a
   centred zero border (LeNet-5's 28 -> 32 px MNIST input; larger images are resized);
4. training only (:class:`Augment`): random crop of ``S x S`` after zero-padding every side
   by ``round(crop_padding * S)`` px, horizontal flip with probability ``hflip``, brightness
   (multiply by ``U(1 - b, 1 + b)``) and contrast (blend with the image mean by
   ``U(1 - c, 1 + c)``), then clamp to [0, 1], then random erasing with probability ``erasing``
   (Zhong et al., 2017): a rectangle of ``U(0.02, 0.33)`` of the image's area, aspect ratio
   (h/w) log-uniform in ``[0.3, 3.3]`` (clipped to the image), filled with uniform noise;
5. normalise with the model entry's mean/std (averaged to one value for a 1-channel input).

Random draws come from the ``generator`` passed in, one set per image, so a seeded generator
gives the same augmentation on every run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Augment", "BatchTransform", "match_channels", "normalization_for", "random_crop", "random_erase"]

_LUMA = (0.299, 0.587, 0.114)
ERASE_AREA = (0.02, 0.33)  # share of the image a random-erasing rectangle covers
ERASE_ASPECT = (0.3, 3.3)  # its height / width


@dataclass(frozen=True)
class Augment:
    """Training augmentation strengths (all 0: none). ``crop_padding`` is a fraction of the side."""

    crop_padding: float = 0.0
    hflip: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    erasing: float = 0.0

    def __post_init__(self) -> None:
        for name, value, high in (("crop_padding", self.crop_padding, 0.5), ("hflip", self.hflip, 1.0),
                                  ("brightness", self.brightness, 1.0), ("contrast", self.contrast, 1.0),
                                  ("erasing", self.erasing, 1.0)):
            if not 0 <= value <= high:
                raise ValueError(f"Augment.{name}: expected a value in [0, {high}], got {value}")


def normalization_for(mean: Sequence[float], std: Sequence[float],
                      channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The entry's ``mean``/``std`` for ``channels`` inputs: averaged to 1, or 1 repeated to 3."""
    if len(mean) != len(std):
        raise ValueError(f"mean has {len(mean)} values but std has {len(std)}")
    if len(mean) == channels:
        return tuple(mean), tuple(std)
    if channels == 1:
        return (sum(mean) / len(mean),), (sum(std) / len(std),)
    if len(mean) == 1:
        return tuple(mean) * channels, tuple(std) * channels
    raise ValueError(f"cannot adapt a {len(mean)}-channel normalisation to {channels} channels")


def match_channels(x: Tensor, channels: int) -> Tensor:
    """``x: float [N, C, H, W]`` -> ``[N, channels, H, W]`` (1 -> 3 repeats, 3 -> 1 is luma)."""
    have = x.shape[1]
    if have == channels:
        return x
    if have == 1:
        return x.expand(-1, channels, -1, -1)
    if have == 3 and channels == 1:
        weights = torch.tensor(_LUMA, dtype=x.dtype, device=x.device)
        return (x * weights[None, :, None, None]).sum(1, keepdim=True)
    raise ValueError(f"cannot turn {have}-channel images into {channels}-channel model inputs")


def fit_to_size(x: Tensor, size: int, mode: str = "resize") -> Tensor:
    """``x: [N, C, H, W]`` -> ``[N, C, size, size]`` by resizing or (``"pad"``) zero-padding."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    if mode == "pad" and h <= size and w <= size:
        top, left = (size - h) // 2, (size - w) // 2
        return F.pad(x, (left, size - w - left, top, size - h - top))
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=h > size or w > size)


def random_crop(x: Tensor, padding: int, generator: torch.Generator | None = None) -> Tensor:
    """Zero-pad ``x: [N, C, H, W]`` by ``padding`` px a side, crop ``H x W`` at a random offset
    per image (uniform over the ``(2 * padding + 1)^2`` positions)."""
    if padding == 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (padding,) * 4).permute(0, 2, 3, 1)  # [N, H + 2p, W + 2p, C]
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator, device=x.device)
    rows = offsets[:, :1] + torch.arange(h, device=x.device)  # [N, H]
    cols = offsets[:, 1:] + torch.arange(w, device=x.device)  # [N, W]
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def random_erase(x: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """Random erasing of ``x: float [N, C, H, W]`` in [0, 1]: with probability ``p`` an image gets
    one rectangle of uniform noise, its area a ``U(*ERASE_AREA)`` share of ``H * W`` and its
    height/width log-uniform in ``ERASE_ASPECT`` (sides clipped to the image)."""
    if p == 0:
        return x
    n, _, h, w = x.shape
    area = h * w * _between(n, ERASE_AREA, x, generator)
    aspect = _between(n, tuple(math.log(a) for a in ERASE_ASPECT), x, generator).exp()
    eh = (area * aspect).sqrt().round().clamp(1, h)
    ew = (area / aspect).sqrt().round().clamp(1, w)
    top = (_between(n, (0.0, 1.0), x, generator) * (h - eh + 1)).floor()
    left = (_between(n, (0.0, 1.0), x, generator) * (w - ew + 1)).floor()
    inside = _within(top, eh, h)[:, :, None] & _within(left, ew, w)[:, None, :]  # [N, H, W]
    chosen = torch.rand(n, generator=generator, device=x.device) < p
    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return torch.where((inside & chosen[:, None, None])[:, None], noise, x)


def _within(start: Tensor, length: Tensor, size: int) -> Tensor:
    """``[N, size]`` mask of the indices ``start <= i < start + length`` (``start, length: [N]``)."""
    index = torch.arange(size, device=start.device, dtype=start.dtype)
    return (index >= start[:, None]) & (index < (start + length)[:, None])


def _between(n: int, bounds: tuple[float, float], like: Tensor, generator: torch.Generator | None) -> Tensor:
    """``[N]`` values drawn from ``U(*bounds)``."""
    low, high = bounds
    return low + (high - low) * torch.rand(n, generator=generator, device=like.device, dtype=like.dtype)


def _uniform(n: int, spread: float, like: Tensor, generator: torch.Generator | None) -> Tensor:
    """``[N, 1, 1, 1]`` factors drawn from ``U(1 - spread, 1 + spread)``."""
    u = torch.rand(n, generator=generator, device=like.device, dtype=like.dtype)
    return (1 - spread + 2 * spread * u).view(n, 1, 1, 1)


def augment_batch(x: Tensor, aug: Augment, generator: torch.Generator | None = None) -> Tensor:
    """Apply :class:`Augment` to ``x: float [N, C, S, S]`` in [0, 1] (see the module docstring)."""
    n, size = x.shape[0], x.shape[-1]
    x = random_crop(x, round(aug.crop_padding * size), generator)
    if aug.hflip > 0:
        flip = torch.rand(n, generator=generator, device=x.device) < aug.hflip
        x = torch.where(flip.view(n, 1, 1, 1), x.flip(-1), x)
    if aug.brightness > 0:
        x = x * _uniform(n, aug.brightness, x, generator)
    if aug.contrast > 0:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = mean + (x - mean) * _uniform(n, aug.contrast, x, generator)
    if aug.brightness > 0 or aug.contrast > 0:
        x = x.clamp_(0, 1)
    return random_erase(x, aug.erasing, generator)


class BatchTransform:
    """``uint8 [N, C, H, W]`` -> normalised ``float32 [N, in_chans, size, size]``.

    Args:
        size: square output side (px).
        in_chans: channels the model reads.
        mean, std: normalisation of [0, 1] inputs (adapted with :func:`normalization_for`).
        fit_mode: ``"resize"`` or ``"pad"`` (see :func:`fit_to_size`).
        augment: training augmentation, or ``None`` (evaluation).
    """

    def __init__(self, size: int, in_chans: int, mean: Sequence[float], std: Sequence[float],
                 fit_mode: str = "resize", augment: Augment | None = None) -> None:
        if fit_mode not in ("resize", "pad"):
            raise ValueError(f"fit_mode must be 'resize' or 'pad', got {fit_mode!r}")
        self.size, self.in_chans, self.fit_mode, self.augment = size, in_chans, fit_mode, augment
        self.mean, self.std = normalization_for(mean, std, in_chans)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"BatchTransform: expected a uint8 batch [N, C, H, W], got "
                             f"{images.dtype} of shape {list(images.shape)}")
        x = images.float().div_(255)
        x = fit_to_size(match_channels(x, self.in_chans), self.size, self.fit_mode)
        if self.augment is not None:
            x = augment_batch(x, self.augment, generator)
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return ((x - mean) / std).contiguous()
