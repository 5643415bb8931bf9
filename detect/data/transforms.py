"""Paired detection transforms: each one maps ``(image, target)`` to ``(image, target)``.

* ``image``: ``Tensor[3, H, W]`` float in ``[0, 1]``.
* ``target``: a dict with

  - ``"boxes"``: ``FloatTensor[N, 4]``, ``xyxy`` absolute pixels (``detect.structures``);
  - ``"labels"``: ``int64[N]``;
  - optional per-object tensors such as ``"difficult"`` / ``"iscrowd"`` (``bool[N]``); any
    tensor whose first dimension is ``N`` and whose key is not in :data:`PER_IMAGE_KEYS`
    counts as per-object and is kept aligned with the boxes;
  - optional per-image entries (``"image_id"``, ``"orig_size"`` as ``(H, W)`` of the file...),
    passed through untouched.

Geometric transforms move the boxes with the image through ``torchvision.transforms.v2`` and
``tv_tensors.BoundingBoxes``, then clip them to the new image and drop those that became
narrower or shorter than 1 pixel, with every per-object field. Transforms return new targets;
the input dict is not modified.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torchvision.transforms.v2 as v2
import torchvision.transforms.v2.functional as F
from torch import Tensor
from torchvision import tv_tensors

from detect import box_ops

Target = dict[str, Any]
PairTransform = Callable[[Tensor, Target], tuple[Tensor, Target]]

#: Keys describing the whole image; never filtered with the boxes.
PER_IMAGE_KEYS = frozenset({"image_id", "orig_size", "letterbox"})

#: Boxes narrower or shorter than this many pixels after a geometric transform are dropped.
MIN_BOX_SIZE = 1.0


# --------------------------------------------------------------------------- target helpers


def per_object_keys(target: Target) -> list[str]:
    """Keys of ``target`` holding one entry per box (``"boxes"`` included)."""
    n = len(target["boxes"])
    return [
        key
        for key, value in target.items()
        if key not in PER_IMAGE_KEYS and isinstance(value, Tensor) and value.ndim >= 1 and len(value) == n
    ]


def select_objects(target: Target, keep: Tensor) -> Target:
    """A copy of ``target`` keeping only the objects ``keep`` (indices or bool mask)."""
    keys = set(per_object_keys(target))
    return {key: value[keep] if key in keys else value for key, value in target.items()}


def sanitize(image: Tensor, target: Target, min_size: float = MIN_BOX_SIZE) -> Target:
    """Clip the boxes to ``image`` and drop those narrower or shorter than ``min_size`` pixels."""
    boxes = box_ops.clip_boxes_to_image(target["boxes"], tuple(image.shape[-2:]))
    target = dict(target, boxes=boxes)
    return select_objects(target, box_ops.remove_small_boxes(boxes, min_size))


def _apply_v2(transform: v2.Transform, image: Tensor, target: Target) -> tuple[Tensor, Target]:
    """Run a torchvision v2 transform on the image and its boxes together."""
    boxes = tv_tensors.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=tuple(image.shape[-2:]))
    out_image, out_boxes = transform(tv_tensors.Image(image), boxes)
    return out_image.as_subclass(Tensor), dict(target, boxes=out_boxes.as_subclass(Tensor))


# --------------------------------------------------------------------------- transforms


class Compose:
    """Apply paired transforms in order."""

    def __init__(self, transforms: Sequence[PairTransform]):
        self.transforms = list(transforms)

    def __call__(self, image: Tensor, target: Target) -> tuple[Tensor, Target]:
        for transform in self.transforms:
            image, target = transform(image, target)
        return image, target

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"{type(self).__name__}([{inner}\n])"


class _Geometric:
    """Base of the transforms that move boxes: runs :meth:`apply`, then :func:`sanitize`."""

    def __call__(self, image: Tensor, target: Target) -> tuple[Tensor, Target]:
        image, target = self.apply(image, target)
        return image, sanitize(image, target)

    def apply(self, image: Tensor, target: Target) -> tuple[Tensor, Target]:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class Resize(_Geometric):
    """Resize like torchvision detection models.

    ``size`` an int: the shorter side becomes ``size`` (the longer one capped at ``max_size``
    if given, shrinking the shorter one below ``size``). ``size`` a pair: exactly ``(h, w)``.
    """

    def __init__(self, size: int | tuple[int, int], max_size: int | None = None):
        self.size = size
        self.max_size = max_size
        self._resize = v2.Resize(size, max_size=max_size, antialias=True)

    def apply(self, image: Tensor, target: Target) -> tuple[Tensor, Target]:
        return _apply_v2(self._resize, image, target)


class RandomHorizontalFlip(_Geometric):
    """Mirror image and boxes left-right with probability ``p``.

    Not for mirror-asymmetric classes (digits, text): leave ``p = 0`` there.
    """

    def __init__(self, p: float = 0.5):
        self.p = p
        self._flip = v2.RandomHorizontalFlip(p)

    def apply(self, image: Tensor, target: Target) -> tuple[Tensor, Target]:
        return _apply_v2(self._flip, image, target)


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * torch.rand(()).item()


class RandomScaleJitter(_Geometric):
    """Resize both sides by one factor drawn uniformly from ``scale_range``."""

    def __init__(self, scale_range: tuple[float, float] = (0.8, 1.2)):
        self.scale_range = tuple(scale_range)

    def apply(self, image: Tensor, target: Target) -> tuple[Tensor, Target]:
        s = _uniform(*self.scale_range)
        h, w = image.shape[-2:]
        size = [max(1, round(h * s)), max(1, round(w * s))]
        return _apply_v2(v2.Resize(size, antialias=True), image, target)


class Letterbox(_Geometric):
    """Resize keeping the aspect ratio so the longer side is ``size``, pad to ``size x size``.

    The image is centred on a canvas of ``fill``. Records ``target["letterbox"] =
    (scale, pad_x, pad_y)``: a point ``p`` of the input image lands at ``p * scale + pad``,
    and :func:`unletterbox_boxes` maps predictions back.

    ``scale_range`` (training only) multiplies ``scale`` by a random factor; above 1 the resized
    image exceeds the canvas, is cropped around its centre (negative pads) and the boxes are
    clipped. ``translate`` (training only) places the resized image at a uniformly random
    offset instead of the centre: anywhere on the canvas when it is smaller, a crop at a random
    position when it is larger, so every region of an upscaled image is seen. The boxes use the
    exact ``scale``; the image's size is rounded to whole pixels, a sub-pixel difference.
    """

    def __init__(self, size: int, fill: float = 114 / 255, scale_range: tuple[float, float] | None = None,
                 translate: bool = False):
        self.size = size
        self.fill = fill
        self.scale_range = scale_range
        self.translate = translate

    def apply(self, image: Tensor, target: Target) -> tuple[Tensor, Target]:
        h, w = image.shape[-2:]
        scale = self.size / max(h, w)
        if self.scale_range is not None:
            scale *= _uniform(*self.scale_range)
        new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
        pad_x, pad_y = self._offset(self.size - new_w), self._offset(self.size - new_h)
        padding = [pad_x, pad_y, self.size - new_w - pad_x, self.size - new_h - pad_y]
        image = F.resize(image, [new_h, new_w], antialias=True)
        image = F.pad(image, padding, fill=self.fill)  # negative padding crops
        boxes = target["boxes"] * scale + _xyxy_shift(target["boxes"], pad_x, pad_y)
        return image, dict(target, boxes=boxes, letterbox=(scale, pad_x, pad_y))

    def _offset(self, slack: int) -> int:
        """Pad before the image along one side: half of ``slack`` (canvas minus image, negative
        when the image is larger), or with ``translate`` a uniform integer between 0 and it."""
        if not self.translate:
            return slack // 2
        return min(0, slack) + int(torch.randint(abs(slack) + 1, ()).item())


def _xyxy_shift(boxes: Tensor, dx: float, dy: float) -> Tensor:
    return torch.tensor([dx, dy, dx, dy], dtype=boxes.dtype, device=boxes.device)


def unletterbox_boxes(boxes: Tensor, scale: float, pad_x: float, pad_y: float) -> Tensor:
    """Map ``xyxy`` boxes on a :class:`Letterbox` canvas back to the image it received.

    Not clipped; clip to the original size with :func:`detect.box_ops.clip_boxes_to_image`.
    """
    return (boxes - _xyxy_shift(boxes, pad_x, pad_y)) / scale


class ColorJitter:
    """Random brightness, contrast, saturation and hue (``torchvision.transforms.v2.ColorJitter``).

    Photometric only: the target is returned unchanged; the image stays in ``[0, 1]``.
    """

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0, hue: float = 0.0):
        self.brightness, self.contrast = brightness, contrast
        self.saturation, self.hue = saturation, hue
        self._jitter = v2.ColorJitter(brightness, contrast, saturation, hue)

    def __call__(self, image: Tensor, target: Target) -> tuple[Tensor, Target]:
        return self._jitter(image).clamp(0.0, 1.0), target

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(brightness={self.brightness}, contrast={self.contrast}, "
            f"saturation={self.saturation}, hue={self.hue})"
        )


# --------------------------------------------------------------------------- presets


def build_transforms(
    train: bool,
    size: int,
    letterbox: bool = False,
    hflip: float = 0.5,
    scale_jitter: tuple[float, float] | None = (0.8, 1.2),
    color_jitter: float = 0.2,
    translate: bool = False,
) -> Compose:
    """Standard training or evaluation pipeline.

    Evaluation: ``Letterbox(size)`` if ``letterbox`` else ``Resize(size)`` (shorter side), nothing
    random. Training adds scale jitter (inside the letterbox, or after the resize; ``None`` turns
    it off), a horizontal flip with probability ``hflip`` (use 0 for mirror-asymmetric classes
    such as digits) and colour jitter of strength ``color_jitter`` (brightness, contrast and
    saturation by ``color_jitter``, hue by a tenth of it; 0 turns it off). ``translate`` (letterbox
    only) places each scaled training image at a random position of the canvas.
    """
    jitter = scale_jitter if train and scale_jitter is not None else None
    steps: list[PairTransform] = []
    if letterbox:
        steps.append(Letterbox(size, scale_range=jitter, translate=train and translate))
    else:
        steps.append(Resize(size))
        if jitter is not None:
            steps.append(RandomScaleJitter(jitter))
    if train and hflip > 0:
        steps.append(RandomHorizontalFlip(hflip))
    if train and color_jitter > 0:
        c = color_jitter
        steps.append(ColorJitter(brightness=c, contrast=c, saturation=c, hue=c / 10))
    return Compose(steps)
