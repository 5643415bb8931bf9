"""PNG plots of one evaluation: PR curves, the confusion matrix and example images.

Drawn with matplotlib's Agg backend on a ``Figure`` object (never ``pyplot``), so nothing opens a
window and no global figure state is kept. Every plot is saved at :data:`DPI` with a fixed figure
size (no ``bbox_inches="tight"``): the pixel size of a PNG is known before it is drawn (see the
``*_size`` functions).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import hsv_to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from detect.evaluation.report import EvaluationReport
from detect.structures import DatasetSplit, ImageRecord

DPI = 100
MAX_LEGEND_CLASSES = 20  # above this, PR legends show the mean curve only
MAX_ANNOTATED_CELLS = 30  # confusion matrices with more classes get no per-cell numbers
GT_COLOR = "#00e000"
EXAMPLE_CELL_INCHES = 4.0


def class_colors(num_classes: int) -> list[tuple[float, float, float]]:
    """``num_classes`` RGB colours in [0, 1], as far apart as possible, none green (green is the
    ground truth).

    Farthest-point selection in CIELAB (perceptual distance) over a grid of hues, saturations and
    brightnesses without the greens, starting from matplotlib's blue: each next colour is the
    candidate farthest from all chosen ones (10 classes stay more than 50 CIE76 units apart).
    """
    candidates, lab = _palette_candidates()
    chosen = [int(np.argmin(np.linalg.norm(lab - _lab(np.array([0.12, 0.47, 0.71])), axis=1)))]
    distance = np.linalg.norm(lab - lab[chosen[0]], axis=1)
    while len(chosen) < num_classes:
        k = int(np.argmax(distance))
        chosen.append(k)
        distance = np.minimum(distance, np.linalg.norm(lab - lab[k], axis=1))
    return [tuple(float(v) for v in candidates[k]) for k in chosen[:num_classes]]


def _palette_candidates() -> tuple[np.ndarray, np.ndarray]:
    """RGB ``float64[K, 3]`` colours (hues every 5 degrees, 2 saturations, 3 brightnesses) that are
    not green (green at least 0.15 above both red and blue), and their CIELAB coordinates."""
    grid = [hsv_to_rgb((h / 360, s, v)) for h in range(0, 360, 5) for s in (0.95, 0.6) for v in (1.0, 0.75, 0.5)]
    rgb = np.array(grid)
    green = (rgb[:, 1] > rgb[:, 0] + 0.15) & (rgb[:, 1] > rgb[:, 2] + 0.15)
    return rgb[~green], _lab(rgb[~green])


def _text_color(background: tuple[float, float, float]) -> str:
    """Black on light label backgrounds (yellow, cyan), white on the others."""
    return "black" if _lab(np.asarray(background, dtype=np.float64))[0] > 65 else "white"


def _lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (``[..., 3]``) -> CIELAB (D65)."""
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    f = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(f > 0.008856, np.cbrt(f), 7.787 * f + 16 / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI, format="png")
    return path


# --------------------------------------------------------------------------------- PR curves

PR_FIGSIZE = (13.0, 5.5)


def pr_curves_size() -> tuple[int, int]:
    """``(width, height)`` in pixels of :func:`plot_pr_curves`' PNG."""
    return round(PR_FIGSIZE[0] * DPI), round(PR_FIGSIZE[1] * DPI)


def plot_pr_curves(report: EvaluationReport, path: Path, iou: float = 0.5) -> Path:
    """Precision-recall curves per class and their mean at IoU ``iou``, two panels.

    Left: COCO's 101-point interpolated precision (``report.coco_pr_curves(iou)``), legend with
    each class's COCO AP@iou. Right: the raw VOC curves (``report.voc_pr_curves()`` at the
    report's VOC IoU), legend with VOC AP. Classes without ground truth are left out.
    """
    fig = Figure(figsize=PR_FIGSIZE, layout="constrained")
    left, right = fig.subplots(1, 2)
    _coco_panel(left, report, iou)
    _voc_panel(right, report)
    fig.suptitle(f"Precision-recall per class ({len(report.class_names)} classes)")
    return _save(fig, path)


def _coco_panel(ax: object, report: EvaluationReport, iou: float) -> None:
    recall, precision = report.coco_pr_curves(iou)
    colors = class_colors(len(report.class_names))
    defined = [k for k in range(len(report.class_names)) if (precision[k] > -1).any()]
    show_each = len(defined) <= MAX_LEGEND_CLASSES
    for k in defined:
        p = np.clip(precision[k], 0, None)
        label = f"{report.class_names[k]} {p.mean():.3f}" if show_each else None
        ax.plot(recall, p, color=colors[k], linewidth=1.2, alpha=0.9 if show_each else 0.35, label=label)
    if defined:
        mean = np.clip(precision[defined], 0, None).mean(axis=0)
        ax.plot(recall, mean, color="black", linewidth=2.6, label=f"all classes {mean.mean():.3f} mAP@{iou:g}")
    _pr_axes(ax, f"COCO 101-point interpolated, IoU {iou:g} ({report.backend})")


def _voc_panel(ax: object, report: EvaluationReport) -> None:
    curves = report.voc_pr_curves()
    colors = class_colors(len(report.class_names))
    voc = report.voc.classes[report.voc_iou]
    show_each = len(curves) <= MAX_LEGEND_CLASSES
    aps = []
    for k, (name, (rec, prec)) in enumerate(curves.items()):
        if voc[k].num_gt == 0:
            continue
        ap = voc[k].ap07 if report.voc.use_07_metric else voc[k].ap12
        aps.append(ap)
        rec_plot, prec_plot = np.concatenate(([0.0], rec)), np.concatenate(([prec[0] if len(prec) else 0.0], prec))
        label = f"{name} {ap:.3f}" if show_each else None
        ax.step(rec_plot, prec_plot, where="post", color=colors[k], linewidth=1.2,
                alpha=0.9 if show_each else 0.35, label=label)
    metric = "VOC07 11-point" if report.voc.use_07_metric else "VOC all-point"
    if aps:
        ax.plot([], [], color="black", linewidth=2.6, label=f"mean AP {np.nanmean(aps):.3f}")
    _pr_axes(ax, f"{metric}, raw curves, IoU {report.voc_iou:g}")


def _pr_axes(ax: object, title: str) -> None:
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize=8, title="class  AP", title_fontsize=8, framealpha=0.85)


# ------------------------------------------------------------------------- confusion matrix


def confusion_matrix_size(num_classes: int) -> tuple[int, int]:
    """``(width, height)`` in pixels of :func:`plot_confusion_matrix`' PNG for ``num_classes``."""
    w, h = _confusion_figsize(num_classes)
    return round(w * DPI), round(h * DPI)


def _confusion_figsize(num_classes: int) -> tuple[float, float]:
    side = min(max(6.0, 0.55 * (num_classes + 1) + 3.0), 30.0)
    return side + 1.5, side


def plot_confusion_matrix(
    matrix: np.ndarray, class_names: Sequence[str], path: Path, normalize: bool = False, title: str | None = None
) -> Path:
    """Heat map of a confusion matrix ``int64[C + 1, C + 1]`` (rows true, columns predicted, ``C`` = background).

    Cells show counts; with ``normalize`` the colours and numbers are row fractions (each true
    class sums to 1; the background row, false alarms, is divided by its own total).
    """
    matrix = np.asarray(matrix)
    c = len(class_names)
    if matrix.shape != (c + 1, c + 1):
        raise ValueError(
            f"matrix: expected shape [{c + 1}, {c + 1}] for {c} classes + background, got {list(matrix.shape)}"
        )
    values = _row_fractions(matrix) if normalize else matrix.astype(np.float64)
    fig = Figure(figsize=_confusion_figsize(c), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else max(values.max(), 1))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="row fraction" if normalize else "count")
    names = [*class_names, "background"]
    ax.set_xticks(range(c + 1), names, rotation=45 if c > 4 else 0, ha="right" if c > 4 else "center")
    ax.set_yticks(range(c + 1), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or ("Confusion matrix (row-normalised)" if normalize else "Confusion matrix (counts)"))
    if c <= MAX_ANNOTATED_CELLS:
        _annotate_cells(ax, matrix, values, normalize)
    ax.axhline(c - 0.5, color="grey", linewidth=1)
    ax.axvline(c - 0.5, color="grey", linewidth=1)
    return _save(fig, path)


def _row_fractions(matrix: np.ndarray) -> np.ndarray:
    totals = matrix.sum(axis=1, keepdims=True).astype(np.float64)
    return np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=np.float64), where=totals > 0)


def _annotate_cells(ax: object, counts: np.ndarray, values: np.ndarray, normalize: bool) -> None:
    top = values.max() if values.max() > 0 else 1.0
    size = 10 if counts.shape[0] <= 12 else 7
    for (i, j), count in np.ndenumerate(counts):
        if count == 0 and i == j == counts.shape[0] - 1:
            continue  # background -> background is never counted
        text = f"{values[i, j]:.2f}\n({count})" if normalize else str(count)
        color = "white" if values[i, j] > 0.55 * top else "black"
        ax.text(j, i, text, ha="center", va="center", fontsize=size, color=color)


# ----------------------------------------------------------------------------- example images


def examples_grid(num_images: int) -> tuple[int, int]:
    """``(rows, cols)`` of the examples grid: at most 4 columns."""
    cols = max(1, min(4, num_images))
    return math.ceil(max(num_images, 1) / cols), cols


def examples_size(num_images: int) -> tuple[int, int]:
    """``(width, height)`` in pixels of :func:`plot_examples`' PNG for ``num_images`` panels."""
    rows, cols = examples_grid(num_images)
    return round(cols * EXAMPLE_CELL_INCHES * DPI), round((rows * EXAMPLE_CELL_INCHES + 0.5) * DPI)


def pick_examples(num_images: int, count: int) -> list[int]:
    """``count`` image indices spread evenly over ``0..num_images-1`` (all of them when fewer)."""
    if count <= 0 or num_images == 0:
        return []
    if count >= num_images:
        return list(range(num_images))
    return np.linspace(0, num_images - 1, count).round().astype(int).tolist()


def plot_examples(
    split: DatasetSplit,
    outputs: Sequence[Mapping],
    path: Path,
    num_images: int = 8,
    score_threshold: float = 0.25,
) -> Path:
    """A grid of ``num_images`` images of ``split`` with ground truth and predictions drawn on them.

    Ground truth: green dashed boxes. Predictions with ``score >= score_threshold``: solid boxes
    coloured by class, labelled ``name score``. ``outputs`` are aligned with ``split.images``
    (xyxy absolute pixels, 0-based labels). An image file that cannot be read is drawn as a
    grey canvas of its annotated size, with a note.

    Raises:
        ImageTooLargeError: an image to draw has more pixels than the decode limit
            (``classify.base.images.MAX_IMAGE_PIXELS``); it is refused from its header.
    """
    if len(outputs) != len(split.images):
        raise ValueError(f"outputs: expected one per image of the split ({len(split.images)}), got {len(outputs)}")
    indices = pick_examples(len(split.images), num_images)
    if not indices:
        raise ValueError(
            f"num_images: expected at least 1 image to draw, got {num_images} (split has {len(split.images)})"
        )
    rows, cols = examples_grid(len(indices))
    fig = Figure(figsize=(cols * EXAMPLE_CELL_INCHES, rows * EXAMPLE_CELL_INCHES + 0.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).reshape(-1)
    colors = class_colors(len(split.class_names))
    for ax, index in zip(axes, indices):
        _draw_example(ax, split, split.images[index], outputs[index], score_threshold, colors)
    for ax in axes[len(indices):]:
        ax.axis("off")
    handles = [Patch(edgecolor=GT_COLOR, facecolor="none", linestyle="--", linewidth=2, label="ground truth")]
    handles += [Patch(color=colors[k], label=name) for k, name in enumerate(split.class_names[:MAX_LEGEND_CLASSES])]
    fig.legend(handles=handles, loc="outside upper center", ncol=min(len(handles), 8), fontsize=9, frameon=False,
               title=f"predictions with score >= {score_threshold:g} (solid, by class)", title_fontsize=9)
    return _save(fig, path)


def _draw_example(ax: object, split: DatasetSplit, record: ImageRecord, output: Mapping, score_threshold: float,
                  colors: list[tuple[float, float, float]]) -> None:
    pixels, note = _load_pixels(split, record)
    extent = (0, record.width, record.height, 0) if note else None  # a placeholder spans the annotated size
    ax.imshow(pixels, interpolation="nearest", extent=extent)
    for obj in record.objects:
        x1, y1, x2, y2 = obj.box
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=GT_COLOR, linewidth=2.0,
                               linestyle="--"))
    boxes, scores, labels = _detections(output, score_threshold)
    for (x1, y1, x2, y2), score, label in zip(boxes, scores, labels):
        color = colors[label] if 0 <= label < len(colors) else (1.0, 0.0, 0.0)
        name = split.class_names[label] if 0 <= label < len(split.class_names) else str(label)
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=1.6))
        inside = y1 < 0.06 * record.height  # no room above the box: write the label inside it
        ax.text(x1, y1, f"{name} {score:.2f}", fontsize=8, color=_text_color(color), va="top" if inside else "bottom",
                ha="left", clip_on=True, bbox={"facecolor": color, "edgecolor": "none", "pad": 1.0, "alpha": 0.85})
    ax.set_xlim(0, record.width)
    ax.set_ylim(record.height, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    title = f"{Path(record.file_name).name}  GT {len(record.objects)} / pred {len(scores)}"
    ax.set_title(title + (f"\n{note}" if note else ""), fontsize=9)


def _load_pixels(split: DatasetSplit, record: ImageRecord) -> tuple[np.ndarray, str]:
    """``uint8[H, W, 3]`` pixels of the image; an unreadable file gives one grey pixel (stretched
    over the annotated size when drawn) and a note. An image over the pixel limit is refused."""
    from detect.data.image_io import ImageTooLargeError, read_image

    try:
        return read_image(split.image_path(record)).permute(1, 2, 0).numpy(), ""
    except ImageTooLargeError:
        raise
    except (FileNotFoundError, ValueError):
        return np.full((1, 1, 3), 200, dtype=np.uint8), "(image file not readable)"


def _detections(output: Mapping, score_threshold: float) -> tuple[list[list[float]], list[float], list[int]]:
    scores = torch.as_tensor(output["scores"], dtype=torch.float64).reshape(-1)
    keep = scores >= score_threshold
    boxes = torch.as_tensor(output["boxes"], dtype=torch.float64).reshape(-1, 4)[keep]
    labels = torch.as_tensor(output["labels"]).reshape(-1)[keep]
    order = torch.argsort(scores[keep])  # draw the best last, on top
    return boxes[order].tolist(), scores[keep][order].tolist(), labels[order].tolist()
