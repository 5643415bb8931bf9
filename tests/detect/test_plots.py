"""Evaluation plots: PNG files of the announced pixel size, with the drawn content actually in them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import random_split
from matplotlib.colors import to_rgb
from PIL import Image

from detect.data.dataset import target_from_record
from detect.evaluation.plots import (
    GT_COLOR,
    class_colors,
    confusion_matrix_size,
    examples_grid,
    examples_size,
    pick_examples,
    plot_confusion_matrix,
    plot_examples,
    plot_pr_curves,
    pr_curves_size,
)
from detect.evaluation.report import evaluate_all
from detect.structures import DatasetSplit


def shifted_outputs(split: DatasetSplit, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Ground truth moved by up to 2 px, random scores, plus one false alarm an image."""
    rng = np.random.default_rng(seed)
    outputs = []
    for record in split.images:
        boxes = np.array([o.box for o in record.objects], dtype=np.float64).reshape(-1, 4)
        boxes = boxes + rng.uniform(-1, 1, boxes.shape)
        boxes = np.concatenate([np.minimum(boxes[:, :2], boxes[:, 2:]), np.maximum(boxes[:, :2], boxes[:, 2:])], 1)
        boxes = np.vstack([boxes, [[0, 0, 8, 8]]])
        labels = [o.label for o in record.objects] + [0]
        outputs.append({"boxes": torch.tensor(boxes), "scores": torch.tensor(rng.uniform(0.3, 1, len(labels))),
                        "labels": torch.tensor(labels, dtype=torch.int64)})
    return outputs


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory):
    split = random_split(tmp_path_factory.mktemp("plots"), num_images=6, seed=5, name="val")
    outputs = shifted_outputs(split)
    targets = [target_from_record(r) for r in split.images]
    return split, outputs, evaluate_all(split.class_names, targets, outputs)


def png(path: Path) -> np.ndarray:
    assert path.is_file() and path.stat().st_size > 5_000
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"))


def pixels_near(pixels: np.ndarray, color: str | tuple, tol: int = 40) -> int:
    rgb = np.array(to_rgb(color)) * 255
    return int((np.abs(pixels.astype(int) - rgb).max(axis=2) <= tol).sum())


def test_pr_curves_png(evaluated, tmp_path: Path) -> None:
    split, _, report = evaluated
    pixels = png(plot_pr_curves(report, tmp_path / "pr.png"))
    assert (pixels.shape[1], pixels.shape[0]) == pr_curves_size() == (1300, 550)
    colors = class_colors(len(split.class_names))
    for k in range(len(split.class_names)):  # every class with ground truth has a visible line
        if report.per_class_rows()[k]["GT"]:
            assert pixels_near(pixels, colors[k]) > 100, split.class_names[k]
    assert pixels_near(pixels, "black", tol=30) > 1_000  # the mean curve and the text


def test_pr_curves_rejects_unknown_iou(evaluated, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="iou: expected one of"):
        plot_pr_curves(evaluated[2], tmp_path / "pr.png", iou=0.42)


@pytest.mark.parametrize("normalize", [False, True])
def test_confusion_matrix_png(evaluated, tmp_path: Path, normalize: bool) -> None:
    _, _, report = evaluated
    matrix = report.confusion_matrix
    assert matrix.shape == (4, 4) and matrix[3, 0] > 0  # the false alarms landed in the background row
    pixels = png(plot_confusion_matrix(matrix, report.class_names, tmp_path / "cm.png", normalize=normalize))
    assert (pixels.shape[1], pixels.shape[0]) == confusion_matrix_size(3) == (750, 600)
    assert pixels_near(pixels, "#08306b", tol=25) > 500  # the darkest "Blues" cell exists


def test_confusion_matrix_size_grows_with_classes_and_is_capped() -> None:
    assert confusion_matrix_size(3) == (750, 600)
    assert confusion_matrix_size(20)[0] > confusion_matrix_size(10)[0]
    assert confusion_matrix_size(500) == (3150, 3000)


def test_confusion_matrix_shape_error(evaluated, tmp_path: Path) -> None:
    _, _, report = evaluated
    with pytest.raises(ValueError, match=r"expected shape \[3, 3\] for 2 classes \+ background, got \[4, 4\]"):
        plot_confusion_matrix(report.confusion_matrix, ["a", "b"], tmp_path / "cm.png")


def test_examples_png(evaluated, tmp_path: Path) -> None:
    split, outputs, _ = evaluated
    pixels = png(plot_examples(split, outputs, tmp_path / "ex.png", num_images=5, score_threshold=0.0))
    assert (pixels.shape[1], pixels.shape[0]) == examples_size(5) == (1600, 850)
    assert pixels_near(pixels, GT_COLOR, tol=30) > 200  # dashed ground-truth boxes
    assert pixels_near(pixels, class_colors(3)[0], tol=12) > 200  # class-0 predictions (the false alarms)


def test_examples_threshold_hides_predictions(evaluated, tmp_path: Path) -> None:
    split, outputs, _ = evaluated
    shown = png(plot_examples(split, outputs, tmp_path / "a.png", num_images=1, score_threshold=0.0))
    hidden = png(plot_examples(split, outputs, tmp_path / "b.png", num_images=1, score_threshold=1.1))
    colour = class_colors(3)[0]
    assert pixels_near(hidden, colour, tol=12) < pixels_near(shown, colour, tol=12)


def test_examples_missing_image_is_drawn_as_placeholder(evaluated, tmp_path: Path) -> None:
    split, outputs, _ = evaluated
    moved = DatasetSplit(split.class_names, split.images, tmp_path / "nowhere", split.name)
    pixels = png(plot_examples(moved, outputs, tmp_path / "ex.png", num_images=2))
    assert pixels_near(pixels, (200 / 255,) * 3, tol=2) > 10_000


def test_examples_bad_input(evaluated, tmp_path: Path) -> None:
    split, outputs, _ = evaluated
    with pytest.raises(ValueError, match=r"expected one per image of the split \(6\), got 5"):
        plot_examples(split, outputs[:5], tmp_path / "ex.png")
    with pytest.raises(ValueError, match="expected at least 1 image to draw, got 0"):
        plot_examples(split, outputs, tmp_path / "ex.png", num_images=0)


def test_grid_and_picking() -> None:
    assert examples_grid(1) == (1, 1) and examples_grid(4) == (1, 4) and examples_grid(9) == (3, 4)
    assert pick_examples(10, 3) == [0, 4, 9] or pick_examples(10, 3) == [0, 5, 9]
    assert pick_examples(3, 8) == [0, 1, 2] and pick_examples(0, 4) == []


def _cielab(rgb: np.ndarray) -> np.ndarray:
    """Reference sRGB -> CIELAB (D65) via colour-science's published matrices, float64."""
    c = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    x = (0.4124564 * c[:, 0] + 0.3575761 * c[:, 1] + 0.1804375 * c[:, 2]) / 0.95047
    y = 0.2126729 * c[:, 0] + 0.7151522 * c[:, 1] + 0.0721750 * c[:, 2]
    z = (0.0193339 * c[:, 0] + 0.1191920 * c[:, 1] + 0.9503041 * c[:, 2]) / 1.08883
    f = [np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29) for t in (x, y, z)]
    return np.stack([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])], axis=1)


def test_class_colors_are_distinct_and_not_green() -> None:
    for n, least in ((3, 60), (9, 50), (10, 50), (15, 35), (80, 10)):
        colors = np.array(class_colors(n))
        assert colors.shape == (n, 3)
        greenish = (colors[:, 1] > colors[:, 0] + 0.15) & (colors[:, 1] > colors[:, 2] + 0.15)
        assert not greenish.any(), n
        lab = _cielab(colors)
        gaps = np.linalg.norm(lab[:, None] - lab[None], axis=-1) + np.eye(n) * 1e9
        assert gaps.min() > least, (n, gaps.min())  # CIE76 distance: 10 digits stay far apart
    assert class_colors(10)[:5] == class_colors(5)  # adding classes keeps the colours of the first
