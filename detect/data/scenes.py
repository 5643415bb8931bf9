"""The "digit-scenes" detection benchmark: real handwritten digits pasted onto cluttered canvases.

Each image is a textured, tinted background with distractor strokes (lines, curves, arcs,
scribbles, blobs in ink colours; never annotated), 2-8 real handwritten digits pasted
at scales spanning COCO small / medium / large, with partial overlaps, then pixel noise and
JPEG compression. Train, val and test draw from disjoint handwritten samples
(:func:`classify.data.digits.split_bank`). The drawing itself (backgrounds, digit shapes, ink
colours, strokes, ``ALPHA_MIN``) is :mod:`detect.data.scene_draw`, shared with the videos of
:mod:`detect.data.video_scenes`.

Boxes are exact: a digit is alpha-composited with its ink intensity as alpha, alpha below
``ALPHA_MIN`` is set to 0, and the box is the tight bounding box of the non-zero alpha in
``xyxy`` absolute pixels (columns ``a..b`` inclusive -> ``x1 = a, x2 = b + 1``), see
:mod:`detect.structures`. Labels are the digit value 0-9, ``class_names = ["0", ..., "9"]``.

Every image is drawn from its own ``numpy.random.Generator`` seeded by ``(seed, split, index)``:
any image can be regenerated alone (:func:`render_scene`), and the number of workers never
changes the output.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from classify.data.digits import SPLIT_NAMES, DigitBank, load_digit_sources, split_bank
from detect.box_ops import box_iou
from detect.data.scene_config import SceneConfig
from detect.data.scene_draw import (
    CLASS_NAMES,
    STROKE_KINDS,
    StrokeSpec,
    composite,
    draw_stroke,
    ink_colour,
    make_background,
    shape_digit,
)
from detect.structures import Box, DatasetSplit, ImageRecord, ObjectAnnotation

SPLIT_CODES = {name: code for code, name in enumerate(SPLIT_NAMES)}
COCO_SMALL, COCO_LARGE = 32**2, 96**2  # area thresholds in px^2
_TRIES_PER_OBJECT = 40
_SHRINK_EVERY = 8  # failed placements before the digit is made 15% smaller


# --------------------------------------------------------------------------- one rendered image


@dataclass(frozen=True, eq=False)
class PastedDigit:
    """One digit as pasted into a scene.

    Attributes:
        label: digit class 0-9.
        box: ``(x1, y1, x2, y2)`` absolute pixels, the tight bbox of ``alpha > 0``.
        alpha: ``float32 [y2 - y1, x2 - x1]`` ink opacity in ``{0} U [ALPHA_MIN, 1]``; its
            first/last rows and columns each hold ink.
        bank_index: index of the source digit in the split's :class:`DigitBank`.
        digit_id: identity of the handwritten sample (shared across digit sources).
        origin: the digit source tag.
    """

    label: int
    box: Box
    alpha: np.ndarray
    bank_index: int
    digit_id: int
    origin: str

    def annotation(self) -> ObjectAnnotation:
        return ObjectAnnotation(box=self.box, label=self.label)


@dataclass(frozen=True, eq=False)
class RenderedScene:
    """One rendered image before JPEG compression.

    Attributes:
        image: ``uint8 [H, W, 3]`` RGB.
        digits: pasted digits in paste order (later ones on top).
    """

    image: np.ndarray
    digits: tuple[PastedDigit, ...]

    def annotations(self) -> tuple[ObjectAnnotation, ...]:
        return tuple(d.annotation() for d in self.digits)

    def alpha_masks(self) -> np.ndarray:
        """``float32 [N, H, W]``: each digit's own alpha on the full canvas (before occlusion)."""
        h, w = self.image.shape[:2]
        masks = np.zeros((len(self.digits), h, w), np.float32)
        for k, d in enumerate(self.digits):
            x1, y1, x2, y2 = (int(v) for v in d.box)
            masks[k, y1:y2, x1:x2] = d.alpha
        return masks


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of image ``index`` of ``split``; independent of every other image."""
    if split not in SPLIT_CODES:
        raise ValueError(f"split: expected one of {SPLIT_NAMES}, got {split!r}")
    if index < 0:
        raise ValueError(f"index: expected a non-negative image index, got {index}")
    return np.random.default_rng([seed, SPLIT_CODES[split], index])


def render_scene(config: SceneConfig, bank: DigitBank, split: str, index: int) -> RenderedScene:
    """Render image ``index`` of ``split`` from the digits of ``bank`` (that split's bank).

    The result depends only on ``(config, bank, split, index)``.
    """
    if len(bank) == 0:
        raise ValueError(f"render_scene: the {split!r} digit bank is empty")
    rng = image_rng(config.seed, split, index)
    size = config.image_size
    canvas = make_background(rng, size, config.background_strength)
    placed = _place_digits(rng, config, bank)
    under, over = _draw_distractor_specs(rng, config, placed)
    for spec in under:
        draw_stroke(canvas, rng, spec, config.min_contrast)
    digits = tuple(_paste(canvas, rng, p, bank, config.min_contrast) for p in placed)
    for spec in over:
        draw_stroke(canvas, rng, spec, config.min_contrast)
    sigma = config.noise_std * rng.uniform(0.4, 1.0)
    canvas += rng.standard_normal(canvas.shape, dtype=np.float32) * np.float32(sigma)
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    return RenderedScene(image=image, digits=digits)


def transform_digit(rng: np.random.Generator, src: np.ndarray, height: int,
                    config: SceneConfig) -> np.ndarray:
    """A source digit (``uint8 [h, w]``, bright ink) as a tight alpha patch ``float32 [H, W]``
    in ``config``'s style (:func:`detect.data.scene_draw.shape_digit`); the patch is at most
    ``image_size - 2`` px on each side and has ink on all four borders.
    """
    return shape_digit(rng, src, height, max_rotation=config.max_rotation, max_shear=config.max_shear,
                       max_aspect_jitter=config.max_aspect_jitter, max_side=config.image_size - 2)


# --------------------------------------------------------------------------- placement


@dataclass
class _Placement:
    """A digit position during placement; ``visible`` shrinks as later digits cover it."""

    alpha: np.ndarray
    x0: int
    y0: int
    bank_index: int
    visible: np.ndarray

    @property
    def box(self) -> tuple[int, int, int, int]:
        h, w = self.alpha.shape
        return self.x0, self.y0, self.x0 + w, self.y0 + h


def _overlap_slices(top: _Placement, below: _Placement):
    """Slices of the common region in ``top``'s and ``below``'s patch coordinates, or None."""
    (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = top.box, below.box
    x1, y1, x2, y2 = max(ax1, bx1), max(ay1, by1), min(ax2, bx2), min(ay2, by2)
    if x2 <= x1 or y2 <= y1:
        return None
    top_sl = (slice(y1 - ay1, y2 - ay1), slice(x1 - ax1, x2 - ax1))
    below_sl = (slice(y1 - by1, y2 - by1), slice(x1 - bx1, x2 - bx1))
    return top_sl, below_sl


def _acceptable(new: _Placement, placed: list[_Placement], config: SceneConfig) -> bool:
    """Whether ``new`` pasted on top keeps every IoU and occlusion limit."""
    if placed and box_iou(np.array([new.box], dtype=np.float64),
                          np.array([old.box for old in placed], dtype=np.float64)).max() > config.max_iou:
        return False
    for old in placed:
        sl = _overlap_slices(new, old)
        if sl is None:
            continue
        lost = float((old.visible[sl[1]] * new.alpha[sl[0]]).sum())
        if float(old.visible.sum()) - lost < (1 - config.max_occlusion) * float(old.alpha.sum()):
            return False
    return True


def _cover(new: _Placement, placed: list[_Placement]) -> None:
    for old in placed:
        sl = _overlap_slices(new, old)
        if sl is not None:
            old.visible[sl[1]] *= 1.0 - new.alpha[sl[0]]


def _try_place(rng: np.random.Generator, config: SceneConfig, bank: DigitBank, height: float,
               placed: list[_Placement]) -> _Placement | None:
    """Place one random digit of about ``height`` px, shrinking it after repeated failures."""
    bank_index = int(rng.integers(len(bank)))
    for attempt in range(_TRIES_PER_OBJECT):
        h = max(config.min_digit_height, int(round(height * 0.85 ** (attempt // _SHRINK_EVERY))))
        alpha = transform_digit(rng, bank.images[bank_index], h, config)
        ph, pw = alpha.shape
        x0 = int(rng.integers(0, config.image_size - pw + 1))
        y0 = int(rng.integers(0, config.image_size - ph + 1))
        candidate = _Placement(alpha, x0, y0, bank_index, alpha.copy())
        if _acceptable(candidate, placed, config):
            return candidate
    return None


def _place_digits(rng: np.random.Generator, config: SceneConfig,
                  bank: DigitBank) -> list[_Placement]:
    """Digit positions, largest first (placed earlier = pasted lower)."""
    count = int(rng.integers(config.min_objects, config.max_objects + 1))
    log_h = rng.uniform(math.log(config.min_digit_height), math.log(config.max_digit_height + 1),
                        count)
    placed: list[_Placement] = []
    for height in sorted(np.exp(log_h), reverse=True):
        new = _try_place(rng, config, bank, float(height), placed)
        if new is None:
            continue
        _cover(new, placed)
        placed.append(new)
    for _ in range(4 * config.min_objects):
        if len(placed) >= config.min_objects:
            break
        new = _try_place(rng, config, bank, float(config.min_digit_height), placed)
        if new is not None:
            _cover(new, placed)
            placed.append(new)
    if len(placed) < config.min_objects:
        raise RuntimeError(f"could only place {len(placed)} of min_objects="
                           f"{config.min_objects} digits in a {config.image_size}px image; "
                           f"lower min_objects / digit heights or raise max_iou")
    return placed


# --------------------------------------------------------------------------- pasting


def _paste(canvas: np.ndarray, rng: np.random.Generator, p: _Placement, bank: DigitBank,
           min_contrast: float) -> PastedDigit:
    x1, y1, x2, y2 = p.box
    colour = ink_colour(rng, canvas[y1:y2, x1:x2], min_contrast)
    composite(canvas, p.alpha, colour, p.x0, p.y0)
    i = p.bank_index
    return PastedDigit(label=int(bank.labels[i]), box=(float(x1), float(y1), float(x2), float(y2)),
                       alpha=p.alpha, bank_index=i, digit_id=int(bank.digit_ids[i]),
                       origin=bank.origins[i])


# --------------------------------------------------------------------------- distractors


def _draw_distractor_specs(rng: np.random.Generator, config: SceneConfig,
                           placed: list[_Placement]) -> tuple[list[StrokeSpec], list[StrokeSpec]]:
    """Distractors drawn under the digits and (thin ones) over them; half sit next to a digit."""
    size = config.image_size
    under, over = [], []
    for _ in range(int(rng.integers(config.min_distractors, config.max_distractors + 1))):
        kind = STROKE_KINDS[int(rng.integers(len(STROKE_KINDS)))]
        if placed and rng.random() < 0.5:
            x1, y1, x2, y2 = placed[int(rng.integers(len(placed)))].box
            w, h = x2 - x1, y2 - y1
            centre = (x1 + w * rng.uniform(-0.5, 1.5), y1 + h * rng.uniform(-0.5, 1.5))
            scale = h * rng.uniform(0.5, 1.2)
        else:
            centre = tuple(rng.uniform(0, size, 2))
            scale = math.exp(rng.uniform(math.log(8), math.log(size * 0.4)))
        is_over = kind != "blob" and rng.random() < 0.25
        (over if is_over else under).append(StrokeSpec(kind, centre, float(scale), is_over))
    return under, over


# --------------------------------------------------------------------------- building splits


def scene_banks(config: SceneConfig, bank: DigitBank | None = None) -> dict[str, DigitBank]:
    """The disjoint per-split digit banks that ``config`` draws from (``bank`` loaded if None)."""
    bank = load_digit_sources(config.sources) if bank is None else bank
    return split_bank(bank, config.split_fractions, config.seed)


def image_file_name(split: str, index: int) -> str:
    """File name of image ``index`` of ``split``, relative to the split's image root."""
    return f"{split}_{index:06d}.jpg"


def write_jpeg(path: Path, rgb: np.ndarray, quality: int) -> None:
    """Write ``uint8 [H, W, 3]`` RGB ``rgb`` as a JPEG of ``quality`` (1-100)."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise OSError(f"could not encode JPEG for {path}")
    path.write_bytes(data.tobytes())


def _render_range(config: SceneConfig, bank: DigitBank, split: str, indices: Sequence[int],
                  image_root: Path) -> list[ImageRecord]:
    records = []
    for index in indices:
        scene = render_scene(config, bank, split, index)
        name = image_file_name(split, index)
        write_jpeg(image_root / name, scene.image, config.jpeg_quality)
        records.append(ImageRecord(image_id=index + 1, file_name=name, width=config.image_size,
                                   height=config.image_size, objects=scene.annotations()))
    return records


def _chunks(n: int, parts: int) -> list[range]:
    bounds = np.linspace(0, n, parts + 1).astype(int)
    return [range(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _remove_stale(image_root: Path, split: str, keep: set[str]) -> None:
    """Delete this builder's images of ``split`` left over from a larger earlier build."""
    for path in image_root.glob(f"{split}_[0-9][0-9][0-9][0-9][0-9][0-9].jpg"):
        if path.name not in keep:
            path.unlink()


def _build_split(config: SceneConfig, bank: DigitBank, split: str, out_dir: Path,
                 progress: bool, workers: int) -> DatasetSplit:
    from tqdm.auto import tqdm

    n = config.num_images(split)
    image_root = out_dir / "images" / split
    image_root.mkdir(parents=True, exist_ok=True)
    chunks = _chunks(n, max(1, math.ceil(n / 16)))
    records: list[ImageRecord] = []
    with tqdm(total=n, desc=f"digit-scenes {split}", unit="img", disable=not progress) as bar:
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(_render_range, config, bank, split, c, image_root)
                           for c in chunks]
                for future, chunk in zip(futures, chunks):
                    records.extend(future.result())
                    bar.update(len(chunk))
        else:
            for index in range(n):
                records.extend(_render_range(config, bank, split, [index], image_root))
                bar.update(1)
    _remove_stale(image_root, split, {r.file_name for r in records})
    return DatasetSplit(class_names=list(CLASS_NAMES), images=records, image_root=image_root,
                        name=split)


def build_scenes(config: SceneConfig, out_dir: Path | str, progress: bool = True,
                 workers: int = 1, bank: DigitBank | None = None) -> dict[str, DatasetSplit]:
    """Render every split of ``config`` to ``<out_dir>/images/<split>/<split>_<index:06d>.jpg``.

    Also writes ``<out_dir>/scene_config.json`` (the resolved config). The output does not
    depend on ``workers``.

    Args:
        config: the dataset definition.
        out_dir: root directory, created if missing.
        progress: show a tqdm progress bar per split.
        workers: processes rendering in parallel (1 renders in this process).
        bank: all source digits; loaded from ``config.sources`` when None.

    Returns:
        ``{"train": DatasetSplit, "val": ..., "test": ...}``; boxes xyxy absolute pixels,
        labels 0-9, ``image_id = index + 1``.
    """
    if not isinstance(config, SceneConfig):
        raise TypeError(f"config: expected a SceneConfig, got {type(config).__name__}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected an int >= 1, got {workers!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    banks = scene_banks(config, bank)
    splits = {s: _build_split(config, banks[s], s, out_dir, progress, workers) for s in SPLIT_NAMES}
    (out_dir / "scene_config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    return splits


# --------------------------------------------------------------------------- statistics


def _boxes(records: Sequence[ImageRecord]) -> np.ndarray:
    rows = [o.box for r in records for o in r.objects]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def _overlapping(records: Sequence[ImageRecord]) -> int:
    """Objects whose box intersects (IoU > 0) another box of the same image."""
    count = 0
    for r in records:
        b = _boxes([r])
        iw = np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0])
        ih = np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1])
        hit = (iw > 0) & (ih > 0)
        np.fill_diagonal(hit, False)
        count += int(hit.any(axis=1).sum())
    return count


def _percentiles(values: np.ndarray) -> dict[str, float]:
    qs = (5, 25, 50, 75, 95)
    if values.size == 0:
        return {f"p{q}": float("nan") for q in qs}
    return {f"p{q}": float(v) for q, v in zip(qs, np.percentile(values, qs))}


def _records_statistics(records: Sequence[ImageRecord], class_names: Sequence[str]) -> dict:
    per_image = np.array([len(r.objects) for r in records], dtype=np.int64)
    boxes = _boxes(records)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    area = w * h
    labels = np.array([o.label for r in records for o in r.objects], dtype=np.int64)
    counts = np.bincount(labels, minlength=len(class_names)) if labels.size else \
        np.zeros(len(class_names), np.int64)
    n_obj = int(per_image.sum())
    return {
        "images": len(records),
        "objects": n_obj,
        "objects_per_image": {
            "min": int(per_image.min()) if per_image.size else 0,
            "mean": float(per_image.mean()) if per_image.size else 0.0,
            "max": int(per_image.max()) if per_image.size else 0},
        "per_class": {name: int(c) for name, c in zip(class_names, counts)},
        "size_buckets": {"small": int((area < COCO_SMALL).sum()),
                         "medium": int(((area >= COCO_SMALL) & (area < COCO_LARGE)).sum()),
                         "large": int((area >= COCO_LARGE).sum())},
        "box_width": _percentiles(w),
        "box_height": _percentiles(h),
        "overlap_fraction": _overlapping(records) / n_obj if n_obj else 0.0,
    }


def scene_statistics(splits: Mapping[str, DatasetSplit]) -> dict[str, dict]:
    """Per-split statistics, plus ``"all"`` when there is more than one split.

    Each entry: ``images``, ``objects``, ``objects_per_image`` (min/mean/max), ``per_class``
    counts, COCO ``size_buckets`` by box area in px^2 (small < 32^2 <= medium < 96^2 <= large),
    ``box_width`` / ``box_height`` percentiles in px (p5, p25, p50, p75, p95), and
    ``overlap_fraction`` (objects whose box has IoU > 0 with another box of its image).
    """
    if not splits:
        raise ValueError("scene_statistics: expected at least one split, got none")
    names = next(iter(splits.values())).class_names
    stats = {k: _records_statistics(s.images, s.class_names) for k, s in splits.items()}
    if len(splits) > 1:
        stats["all"] = _records_statistics([r for s in splits.values() for r in s.images], names)
    return stats


def _statistics_rows(stats: Mapping[str, dict]) -> list[tuple[str, Callable[[dict], str]]]:
    def pct(key: str) -> Callable[[dict], str]:
        return lambda s: (f"{s['size_buckets'][key]} "
                          f"({100 * s['size_buckets'][key] / max(s['objects'], 1):.0f}%)")

    rows: list[tuple[str, Callable[[dict], str]]] = [
        ("images", lambda s: str(s["images"])),
        ("objects", lambda s: str(s["objects"])),
        ("objects/image min / mean / max", lambda s: "{min} / {mean:.2f} / {max}".format(
            **s["objects_per_image"])),
        ("small (< 32² px²)", pct("small")),
        ("medium", pct("medium")),
        ("large (≥ 96² px²)", pct("large")),
        ("box width p5 / p50 / p95 px", lambda s: "{p5:.0f} / {p50:.0f} / {p95:.0f}".format(
            **s["box_width"])),
        ("box height p5 / p50 / p95 px", lambda s: "{p5:.0f} / {p50:.0f} / {p95:.0f}".format(
            **s["box_height"])),
        ("objects overlapping another", lambda s: f"{100 * s['overlap_fraction']:.1f}%"),
    ]
    first = next(iter(stats.values()))
    for name in first["per_class"]:
        rows.append((f"class {name}", lambda s, n=name: str(s["per_class"].get(n, 0))))
    return rows


def format_statistics(stats: Mapping[str, dict]) -> str:
    """``stats`` from :func:`scene_statistics` as a Markdown table, one column per split."""
    if not stats:
        raise ValueError("format_statistics: expected statistics of at least one split")
    cols = list(stats)
    lines = ["| statistic | " + " | ".join(cols) + " |",
             "| --- | " + " | ".join("---:" for _ in cols) + " |"]
    for label, cell in _statistics_rows(stats):
        lines.append(f"| {label} | " + " | ".join(cell(stats[c]) for c in cols) + " |")
    return "\n".join(lines)
