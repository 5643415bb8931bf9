"""Mosaic and MixUp: YOLO training samples made of several images.

Mosaic (Bochkovskiy et al., "YOLOv4", 2020): four training images, each resized so that its
longer side is ``S`` (the training ``image_size``), are pasted into the four quadrants around a
random centre of a ``2S x 2S`` canvas of grey (114/255) — each tile touches the centre with one
corner — and a square window of the canvas is cut out and resized to ``S x S``
(:func:`place_quadrants`, :func:`crop_window`). The window has side ``S / scale`` for a random
``scale`` (above 1 the objects come out larger) and is centred on the canvas, optionally shifted by
up to :data:`MOSAIC_TRANSLATE` ``* S`` each way; as the mosaic centre is drawn from the middle half
of the canvas, the seams fall anywhere in the window.

MixUp (Zhang et al., "mixup", 2018), as YOLO recipes apply it: a mosaic blended with a second
mosaic, ``r * a + (1 - r) * b`` with ``r ~ Beta(32, 32)``, keeping the objects of both.

Boxes follow the images (``FloatTensor[N, 4]`` xyxy pixels), are clipped to the window, and those
left with less than :data:`MIN_VISIBLE` of their area or narrower or shorter than
:data:`MIN_SIDE` output pixels are dropped with every per-object field (see
:func:`detect.data.transforms.per_object_keys`).

:class:`MosaicDataset` wraps a dataset of untransformed images and makes each sample a mosaic with
probability ``p``, else runs the ordinary (letterbox) pipeline; all its random draws come from
torch's default generator, so under :class:`detect.data.sampler.SeededDataset` a sample depends on
``(seed, epoch, index)`` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torchvision.transforms.v2.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from detect.data.transforms import PairTransform, Target, per_object_keys, select_objects

#: Grey of the canvas where no image lies (the letterbox's fill).
FILL = 114 / 255
#: Boxes keeping less than this fraction of their area after the crop are dropped.
MIN_VISIBLE = 0.25
#: Boxes narrower or shorter than this many output pixels after the crop are dropped.
MIN_SIDE = 2.0
#: With ``translate``: the window moves by up to this fraction of ``S`` each way.
MOSAIC_TRANSLATE = 0.1
#: Beta(a, a) of the MixUp ratio.
MIXUP_BETA = 32.0


# --------------------------------------------------------------------------- geometry


def _shift(boxes: Tensor, dx: float, dy: float) -> Tensor:
    return boxes + torch.tensor([dx, dy, dx, dy], dtype=boxes.dtype)


def fit_longer_side(image: Tensor, target: Target, size: int) -> tuple[Tensor, Target]:
    """Resize ``image`` (``Tensor[3, H, W]``) keeping its aspect ratio so its longer side is ``size``.

    The boxes are scaled by the exact factor ``size / max(H, W)``; the image's sides are rounded to
    whole pixels (a sub-pixel difference), as in :class:`detect.data.transforms.Letterbox`.
    """
    h, w = image.shape[-2:]
    scale = size / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    if (new_h, new_w) != (h, w):
        image = F.resize(image, [new_h, new_w], antialias=True)
    return image, dict(target, boxes=target["boxes"] * scale)


def quadrant_origins(sizes: Sequence[tuple[int, int]], centre: tuple[int, int]) -> list[tuple[int, int]]:
    """Top-left corners ``(x0, y0)`` of four tiles of sizes ``(h, w)`` around ``centre = (xc, yc)``.

    Tile 0 goes top-left of the centre (its bottom-right corner on it), 1 top-right, 2 bottom-left,
    3 bottom-right (its top-left corner on it).
    """
    if len(sizes) != 4:
        raise ValueError(f"mosaic: expected 4 tile sizes, got {len(sizes)}")
    xc, yc = centre
    (h0, w0), (h1, _), (_, w2), _ = sizes
    return [(xc - w0, yc - h0), (xc, yc - h1), (xc - w2, yc), (xc, yc)]


def merge_targets(targets: Sequence[Target]) -> Target:
    """All objects of ``targets`` in one target (per-object tensors concatenated in order); the
    per-image entries (``image_id``, ``orig_size``...) are the first target's.

    Raises:
        ValueError: targets with different per-object fields.
    """
    keys = per_object_keys(targets[0])
    for i, target in enumerate(targets[1:], 1):
        if set(per_object_keys(target)) != set(keys):
            raise ValueError(f"mosaic: target {i} has the per-object fields {sorted(per_object_keys(target))}, "
                             f"target 0 has {sorted(keys)}; every image of a dataset must have the same")
    merged = {key: torch.cat([t[key] for t in targets]) for key in keys}
    return {**targets[0], **merged}


def place_quadrants(tiles: Sequence[Tensor], targets: Sequence[Target], centre: tuple[int, int],
                    canvas_size: int, fill: float = FILL) -> tuple[Tensor, Target]:
    """Paste four tiles (``Tensor[3, h, w]``) around ``centre`` on a ``canvas_size`` square of ``fill``.

    Tile ``i`` goes to quadrant ``i`` of :func:`quadrant_origins`; whatever reaches past the canvas
    is cut. Returns the canvas ``Tensor[3, canvas_size, canvas_size]`` and one target with the
    objects of all four (tile order), boxes moved with their tile to canvas pixels and *not*
    clipped: a box may reach past the canvas where its tile does; :func:`crop_window` clips.
    """
    if len(tiles) != 4 or len(targets) != 4:
        raise ValueError(f"mosaic: expected 4 tiles and 4 targets, got {len(tiles)} and {len(targets)}")
    origins = quadrant_origins([tuple(t.shape[-2:]) for t in tiles], centre)
    canvas = torch.full((tiles[0].shape[0], canvas_size, canvas_size), fill, dtype=tiles[0].dtype)
    moved = []
    for tile, target, (x0, y0) in zip(tiles, targets, origins):
        h, w = tile.shape[-2:]
        left, top = max(x0, 0), max(y0, 0)
        right, bottom = min(x0 + w, canvas_size), min(y0 + h, canvas_size)
        if right > left and bottom > top:
            canvas[:, top:bottom, left:right] = tile[:, top - y0:bottom - y0, left - x0:right - x0]
        moved.append(dict(target, boxes=_shift(target["boxes"], x0, y0)))
    return canvas, merge_targets(moved)


def crop_window(canvas: Tensor, target: Target, window: tuple[int, int, int], size: int, fill: float = FILL,
                min_visible: float = MIN_VISIBLE, min_side: float = MIN_SIDE) -> tuple[Tensor, Target]:
    """Cut the square ``window = (x, y, side)`` (canvas pixels) out of ``canvas`` and resize it to
    ``size x size``; parts of the window outside the canvas are ``fill``.

    A canvas point ``p`` lands at ``(p - (x, y)) * size / side``. Boxes are mapped so, clipped to
    the output and to the canvas's extent in it, and kept only when at least ``min_visible`` of
    their (mapped, unclipped) area remains and they are at least ``min_side`` pixels wide and
    high; dropped boxes take every per-object field with them.
    """
    x, y, side = window
    height, width = canvas.shape[-2:]
    image = F.pad(canvas, [-x, -y, x + side - width, y + side - height], fill=fill)  # negative pads crop
    if side != size:
        image = F.resize(image, [size, size], antialias=True)
    scale = size / side
    boxes = _shift(target["boxes"], -x, -y) * scale
    low_x, high_x = max(0.0, -x * scale), min(float(size), (width - x) * scale)
    low_y, high_y = max(0.0, -y * scale), min(float(size), (height - y) * scale)
    clipped = torch.stack([boxes[:, 0].clamp(low_x, high_x), boxes[:, 1].clamp(low_y, high_y),
                           boxes[:, 2].clamp(low_x, high_x), boxes[:, 3].clamp(low_y, high_y)], dim=1)
    sides = clipped[:, 2:] - clipped[:, :2]
    area = (boxes[:, 2:] - boxes[:, :2]).prod(dim=1)
    keep = (sides >= min_side).all(dim=1) & (sides.prod(dim=1) >= min_visible * area)
    return image, select_objects(dict(target, boxes=clipped), keep)


def mosaic_window(size: int, scale: float, shift: tuple[float, float] = (0.0, 0.0)) -> tuple[int, int, int]:
    """The window ``(x, y, side)`` of a ``2 size`` canvas that :func:`crop_window` turns into the
    output: side ``size / scale`` (whole pixels), centred on the canvas, moved by ``shift`` pixels."""
    side = max(1, round(size / scale))
    return round(size - side / 2 + shift[0]), round(size - side / 2 + shift[1]), side


def mixup(image_a: Tensor, target_a: Target, image_b: Tensor, target_b: Target,
          ratio: float) -> tuple[Tensor, Target]:
    """``ratio * a + (1 - ratio) * b`` (same-size images) with the objects of both (``a``'s first,
    ``a``'s per-image entries)."""
    if image_a.shape != image_b.shape:
        raise ValueError(f"mixup: expected images of one shape, got {tuple(image_a.shape)} and {tuple(image_b.shape)}")
    return ratio * image_a + (1 - ratio) * image_b, merge_targets([target_a, target_b])


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * torch.rand(()).item()


# --------------------------------------------------------------------------- dataset


class MosaicDataset(Dataset):
    """Training samples that are mosaics with probability ``p``, else the ordinary pipeline's.

    Each target gets ``"mosaic"``: whether the sample is a mosaic. Mosaic samples are built from
    the sample's image and 3 drawn uniformly from the dataset (possibly repeated), shuffled over the
    quadrants; then, with probability ``mixup``, blended with a second mosaic; then ``after``
    (flip, colour jitter). Their targets carry the sample's own per-image entries.

    ``set_epoch(e)`` and :meth:`close_mosaic_at` decide whether mosaics are made at all
    (:attr:`mosaic_active`); when not (or ``p == 0``) no random number is drawn before ``single``,
    so the samples are exactly those of ``single`` over the dataset.

    Args:
        dataset: yields untransformed ``(image Tensor[3, H, W] in [0, 1], target)``.
        size: ``S``, the side of every output image.
        p: probability that a sample is a mosaic.
        single: the ordinary training pipeline (letterbox to ``S x S``, flip, colour jitter).
        after: what follows a mosaic: ``single`` without its letterbox.
        scale_range: range of the mosaic's random ``scale`` (``None``: 1).
        translate: move the window by up to :data:`MOSAIC_TRANSLATE` ``* S`` each way.
        mixup: probability that a mosaic is blended with a second one.
        fill: grey of the canvas.
    """

    def __init__(self, dataset: Dataset, size: int, p: float, single: PairTransform, after: PairTransform,
                 scale_range: tuple[float, float] | None = None, translate: bool = False, mixup: float = 0.0,
                 fill: float = FILL) -> None:
        for name, value in (("p", p), ("mixup", mixup)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"MosaicDataset.{name}: expected a probability in [0, 1], got {value}")
        if size < 1:
            raise ValueError(f"MosaicDataset.size: expected >= 1, got {size}")
        if scale_range is not None and not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f"MosaicDataset.scale_range: expected (low, high) with 0 < low <= high, "
                             f"got {list(scale_range)}")
        self.dataset, self.size, self.p, self.single, self.after = dataset, size, p, single, after
        self.scale_range, self.translate, self.mixup, self.fill = scale_range, translate, mixup, fill
        self.epoch: int = 0
        self.close_epoch: int | None = None

    @property
    def class_names(self) -> list[str]:
        return self.dataset.class_names  # type: ignore[attr-defined]

    @property
    def split(self) -> Any:
        return self.dataset.split  # type: ignore[attr-defined]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def close_mosaic_at(self, epoch: int | None) -> None:
        """Make no mosaic from epoch ``epoch`` on (0-based; ``None``: mosaics to the end)."""
        self.close_epoch = epoch

    @property
    def mosaic_active(self) -> bool:
        """Whether samples of the current epoch may be mosaics."""
        return self.p > 0 and (self.close_epoch is None or self.epoch < self.close_epoch)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Tensor, Target]:
        if self.mosaic_active and torch.rand(()).item() < self.p:
            image, target = self.mosaic(index)
            if self.mixup > 0 and torch.rand(()).item() < self.mixup:
                ratio = torch.distributions.Beta(MIXUP_BETA, MIXUP_BETA).sample().item()
                image, target = mixup(image, target, *self.mosaic(int(torch.randint(len(self), ()))), ratio)
            image, target = self.after(image, target)
            return image, {**target, "mosaic": True}
        image, target = self.single(*self.dataset[index])
        return image, {**target, "mosaic": False}

    def mosaic(self, index: int) -> tuple[Tensor, Target]:
        """A mosaic of image ``index`` and 3 drawn ones: ``Tensor[3, S, S]`` and its target, before
        ``after``."""
        indices = [index, *torch.randint(len(self), (3,)).tolist()]
        order = torch.randperm(4).tolist()  # quadrant q shows indices[order[q]]
        xc, yc = (self.size // 2 + torch.randint(self.size + 1, (2,))).tolist()
        scale = _uniform(*self.scale_range) if self.scale_range is not None else 1.0
        reach = MOSAIC_TRANSLATE * self.size if self.translate else 0.0
        shift = (_uniform(-reach, reach), _uniform(-reach, reach)) if self.translate else (0.0, 0.0)
        tiles = [fit_longer_side(*self.dataset[i], self.size) for i in indices]
        canvas, target = place_quadrants([tiles[k][0] for k in order], [tiles[k][1] for k in order], (xc, yc),
                                         2 * self.size, self.fill)
        image, target = crop_window(canvas, target, mosaic_window(self.size, scale, shift), self.size, self.fill)
        own = tiles[0][1]
        per_image = {k: v for k, v in own.items() if k not in per_object_keys(own)}
        return image, {**target, **per_image}
