"""Object crops of a detection dataset as an image folder: the data of the "train a classifier
backbone, then detect" path (``classify train --data <folder>``) and of R-CNN's warped regions.

Layout written: ``out/<split>/<class name>/<image stem>_<object index>.png``, one RGB PNG of
``size x size`` pixels per object.  Two ways to cut an object (box ``(x1, y1, x2, y2)`` in
pixels, ``w = x2 - x1``, ``h = y2 - y1``):

``square``  a square of side ``max(w, h) * (1 + 2 * context)`` centred on the box, so the object
            keeps its aspect ratio (what a detector's features see); parts outside the image are
            filled with the image's mean colour.
``warp``    the box grown by ``context`` on each side and stretched to the square, R-CNN style.

``negatives`` adds a ``background`` class: windows of the image's own object sizes that cover
almost nothing of any object, the busiest (highest pixel spread: strokes, edges) of several random
candidates, so a classifier pretrained on the crops also learns what is *not* an object.

For a classifier that rescores a detector's boxes (:mod:`detect.models.rcnn.rescore`), crops should look like
those boxes: ``jitter`` adds copies of each object cut around a randomly moved box (IoU >= 0.6
with it, a detection that counts), and ``partial`` adds ``background`` windows around part of an
object (IoU 0.1-0.4 with it and below 0.4 with every object: the boxes a detector places badly).
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from detect.box_ops import box_ioa, box_iou
from detect.data.image_io import read_image
from detect.structures import DatasetSplit, ObjectAnnotation

CropMode = Literal["square", "warp"]
CROP_MODES = ("square", "warp")
BACKGROUND = "background"
NEGATIVE_MAX_COVER = 0.15  # a negative window holds at most this fraction of any object's box
NEGATIVE_CANDIDATES = 12   # random windows drawn for each negative; the busiest one is kept
DEFAULT_CONTEXT = 0.15     # margin around a box, as a fraction of its side
JITTER_SHIFT = 0.15        # a jittered copy moves each side by up to this fraction of the box's width/height
JITTER_MIN_IOU = 0.6       # ... and keeps at least this IoU with the box
PARTIAL_SHIFT = 0.6        # a partial window moves each side of an object's box by up to this fraction
PARTIAL_IOU = (0.1, 0.4)   # ... to an IoU in [0.1, 0.4) with the object, and below 0.4 with every object
MAX_DRAWS = 50             # random boxes drawn at most for each jittered copy or partial window
_UNSAFE = re.compile(r"[^\w.\- ]")


@dataclass(frozen=True)
class CropSummary:
    """What :func:`export_crops` wrote for one split: ``counts[class name]`` crops per class."""

    split: str
    folder: Path
    counts: dict[str, int]
    skipped: int

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def folder_name(class_name: str) -> str:
    """A class name made safe as a folder name (path separators and oddities become ``_``)."""
    name = _UNSAFE.sub("_", class_name).strip(". ")
    return name or "_"


def crop_window(box: tuple[float, float, float, float], mode: CropMode,
                context: float) -> tuple[float, float, float, float]:
    """The ``(x1, y1, x2, y2)`` window cut around ``box`` (may reach outside the image)."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    if mode == "warp":
        return x1 - context * w, y1 - context * h, x2 + context * w, y2 + context * h
    half = max(w, h) * (1 + 2 * context) / 2
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return cx - half, cy - half, cx + half, cy + half


def cut(image: Image.Image, window: tuple[float, float, float, float], size: int,
        fill: tuple[int, ...]) -> Image.Image:
    """``window`` of ``image`` resized to ``size x size``; outside the image is ``fill``."""
    x1, y1, x2, y2 = (round(v) for v in window)
    canvas = Image.new("RGB", (max(x2 - x1, 1), max(y2 - y1, 1)), fill)
    inside = (max(x1, 0), max(y1, 0), min(x2, image.width), min(y2, image.height))
    if inside[2] > inside[0] and inside[3] > inside[1]:
        canvas.paste(image.crop(inside), (inside[0] - x1, inside[1] - y1))
    return canvas.resize((size, size), Image.Resampling.BILINEAR)


def export_crops(split: DatasetSplit, out: str | Path, *, size: int = 64, context: float = DEFAULT_CONTEXT,
                 mode: CropMode = "square", min_side: float = 2.0, negatives: int = 0, jitter: int = 0,
                 partial: int = 0, seed: int = 0, overwrite: bool = False, progress: bool = True) -> CropSummary:
    """Write every object of ``split`` as a crop under ``out/<split name>/<class>/``.

    Args:
        size: side of the square PNGs in pixels.
        context: margin around the box as a fraction of its side (see the module docstring).
        mode: ``square`` (keep the aspect ratio) or ``warp`` (stretch, as R-CNN).
        min_side: objects narrower or shorter than this (pixels) are skipped and counted.
        negatives: background windows cut per image into ``out/<split name>/background/``
            (:func:`negative_windows`; fewer where the objects leave no room); needs a dataset
            without a class of that name.
        jitter: extra crops of each object around a randomly moved box (:func:`jittered_boxes`),
            written as ``<stem>_<index>_j<k>.png`` beside the object's crop.
        partial: background windows per image around part of an object (:func:`partial_windows`),
            ``background/<stem>_p<k>.png``; needs a dataset without a class named ``background``.
        seed: seeds the random windows and boxes (same seed, same crops).
        overwrite: replace an existing ``out/<split name>`` folder (else it is an error).

    Returns the per-class counts; only classes with at least one crop get a folder.
    """
    if mode not in CROP_MODES:
        raise ValueError(f"crop mode must be one of {CROP_MODES}, got {mode!r}")
    if size < 8:
        raise ValueError(f"crop size must be at least 8 pixels, got {size}")
    if context < 0:
        raise ValueError(f"crop context must be >= 0, got {context}")
    for name, value in (("negatives", negatives), ("jitter", jitter), ("partial", partial)):
        if value < 0:
            raise ValueError(f"{name} crops must be >= 0, got {value}")
    if (negatives or partial) and BACKGROUND in map(folder_name, split.class_names):
        raise ValueError(f"the dataset has a class named {BACKGROUND!r}: its crops and the negative "
                         f"windows would share a folder; cut them with negatives=0 and partial=0")
    rng = np.random.default_rng(seed)
    folder = Path(out) / split.name
    if folder.exists():
        if not overwrite:
            raise FileExistsError(f"{folder} already exists; choose another output or overwrite it (--force)")
        shutil.rmtree(folder)
    names = {label: folder_name(name) for label, name in enumerate(split.class_names)}
    counts: Counter[str] = Counter()
    skipped = 0
    for record in tqdm(split.images, desc=f"crops {split.name}", unit="img", disable=not progress):
        pixels = read_image(split.image_path(record)).permute(1, 2, 0).numpy()
        image = Image.fromarray(pixels)
        fill = mean_colour(pixels)
        stem = Path(record.file_name).stem
        for index, obj in enumerate(record.objects):
            if obj.width < min_side or obj.height < min_side:
                skipped += 1
                continue
            target = folder / names[obj.label]
            target.mkdir(parents=True, exist_ok=True)
            cut(image, crop_window(obj.box, mode, context), size, fill).save(target / f"{stem}_{index}.png")
            moved = jittered_boxes(obj.box, jitter, rng) if jitter else []
            for k, box in enumerate(moved):
                cut(image, crop_window(box, mode, context), size, fill).save(target / f"{stem}_{index}_j{k}.png")
            counts[names[obj.label]] += 1 + len(moved)
        windows = negative_windows(pixels, record.objects, negatives, rng, context) if negatives else []
        windows = [(f"bg{k}", w) for k, w in enumerate(windows)] + [
            (f"p{k}", crop_window(box, mode, context))
            for k, box in enumerate(partial_windows(record.objects, partial, rng) if partial else [])]
        if windows:
            (folder / BACKGROUND).mkdir(parents=True, exist_ok=True)
            counts[BACKGROUND] += len(windows)
        for tag, window in windows:
            cut(image, window, size, fill).save(folder / BACKGROUND / f"{stem}_{tag}.png")
    return CropSummary(split.name, folder, dict(sorted(counts.items())), skipped)


def negative_windows(pixels: np.ndarray, objects: Sequence[ObjectAnnotation], count: int, rng: np.random.Generator,
                     context: float = DEFAULT_CONTEXT) -> list[tuple[float, float, float, float]]:
    """Up to ``count`` square ``(x1, y1, x2, y2)`` windows inside an ``[H, W, 3]`` image that hold
    at most ``NEGATIVE_MAX_COVER`` of any object's box.

    Each window's side is that of a random object's square crop (``max(w, h) * (1 + 2 * context)``;
    a tenth of the short image side when there are no objects); of ``NEGATIVE_CANDIDATES`` random
    positions the one with the largest grey-level standard deviation is kept (strokes and edges,
    not flat background).  Fewer windows come back when no candidate is free of objects.
    """
    height, width = pixels.shape[:2]
    boxes = np.array([o.box for o in objects], dtype=np.float64).reshape(-1, 4)
    sides = (np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) * (1 + 2 * context)
             if len(boxes) else np.array([min(height, width) / 10]))
    grey = pixels.mean(axis=2)
    windows = []
    for _ in range(count):
        side = float(min(rng.choice(sides), height, width))
        x1 = rng.uniform(0, width - side, NEGATIVE_CANDIDATES)
        y1 = rng.uniform(0, height - side, NEGATIVE_CANDIDATES)
        candidates = np.stack([x1, y1, x1 + side, y1 + side], axis=1)
        covered = box_ioa(boxes, candidates).max(axis=0) if len(boxes) else np.zeros(NEGATIVE_CANDIDATES)
        free = np.flatnonzero(covered <= NEGATIVE_MAX_COVER)
        if not len(free):
            continue
        spread = [grey[int(y1[i]):int(y1[i] + side) + 1, int(x1[i]):int(x1[i] + side) + 1].std() for i in free]
        windows.append(tuple(float(v) for v in candidates[free[int(np.argmax(spread))]]))
    return windows


def _moved(box: np.ndarray, shift: float, rng: np.random.Generator) -> np.ndarray:
    """``box`` ``[4]`` xyxy with each side moved by up to ``shift`` x its width / height."""
    w, h = box[2] - box[0], box[3] - box[1]
    return box + rng.uniform(-shift, shift, 4) * np.array([w, h, w, h])


def _valid(box: np.ndarray) -> bool:
    return bool(box[2] - box[0] >= 2 and box[3] - box[1] >= 2)


def jittered_boxes(box: tuple[float, float, float, float], count: int,
                   rng: np.random.Generator) -> list[tuple[float, float, float, float]]:
    """Up to ``count`` copies of ``box`` (xyxy px) with each side moved by up to ``JITTER_SHIFT`` of
    its width / height, each at IoU >= ``JITTER_MIN_IOU`` with it (``MAX_DRAWS`` draws a copy)."""
    reference = np.array(box, dtype=np.float64)
    out: list[tuple[float, float, float, float]] = []
    for _ in range(count * MAX_DRAWS):
        if len(out) == count:
            break
        moved = _moved(reference, JITTER_SHIFT, rng)
        if _valid(moved) and box_iou(moved[None], reference[None])[0, 0] >= JITTER_MIN_IOU:
            out.append(tuple(float(v) for v in moved))
    return out


def partial_windows(objects: Sequence[ObjectAnnotation], count: int,
                    rng: np.random.Generator) -> list[tuple[float, float, float, float]]:
    """Up to ``count`` boxes (xyxy px) around part of a random object: its box with each side moved
    by up to ``PARTIAL_SHIFT``, at IoU in ``PARTIAL_IOU`` with it and below the upper bound with
    every object (background for a classifier, as a detector's badly placed boxes are)."""
    boxes = np.array([o.box for o in objects], dtype=np.float64).reshape(-1, 4)
    low, high = PARTIAL_IOU
    out: list[tuple[float, float, float, float]] = []
    for _ in range(count * MAX_DRAWS if len(boxes) else 0):
        if len(out) == count:
            break
        moved = _moved(boxes[rng.integers(len(boxes))], PARTIAL_SHIFT, rng)
        if _valid(moved) and low <= box_iou(moved[None], boxes).max() < high:
            out.append(tuple(float(v) for v in moved))
    return out


def crop_statistics(summaries: list[CropSummary]) -> str:
    """A Markdown table of crops per class and split."""
    classes = sorted({c for s in summaries for c in s.counts})
    lines = ["| class | " + " | ".join(s.split for s in summaries) + " |",
             "| --- |" + " ---: |" * len(summaries)]
    lines += [f"| {c} | " + " | ".join(str(s.counts.get(c, 0)) for s in summaries) + " |" for c in classes]
    lines.append("| all | " + " | ".join(str(s.total) for s in summaries) + " |")
    return "\n".join(lines)


def mean_colour(pixels: np.ndarray) -> tuple[int, int, int]:
    """Mean RGB of an ``[H, W, 3]`` uint8 array, as ints."""
    return tuple(int(v) for v in pixels.reshape(-1, 3).mean(0))  # type: ignore[return-value]
