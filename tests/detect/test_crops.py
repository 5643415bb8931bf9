"""``detect data crops``: object crops as an image folder that ``classify train`` reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import CLASS_NAMES, random_split
from PIL import Image

from classify.data.datasets import load_data
from detect.box_ops import box_ioa, box_iou
from detect.data.crops import (
    BACKGROUND,
    JITTER_MIN_IOU,
    NEGATIVE_MAX_COVER,
    PARTIAL_IOU,
    crop_window,
    cut,
    export_crops,
    folder_name,
    jittered_boxes,
    negative_windows,
    partial_windows,
)
from detect.data.formats import write_split
from detect.structures import DatasetSplit, ImageRecord, ObjectAnnotation

REPO = Path(__file__).resolve().parents[2]


def test_crop_windows_keep_aspect_or_warp() -> None:
    assert crop_window((10, 20, 30, 60), "square", 0.0) == (0, 20, 40, 60)  # side max(20, 40), centred
    assert crop_window((10, 20, 30, 60), "square", 0.25) == (-10, 10, 50, 70)  # 40 * 1.5
    assert crop_window((10, 20, 30, 60), "warp", 0.5) == (0, 0, 40, 80)


def test_cut_fills_outside_the_image_and_copies_inside_exactly() -> None:
    pixels = np.arange(10 * 10 * 3, dtype=np.uint8).reshape(10, 10, 3)
    image = Image.fromarray(pixels)
    inside = np.asarray(cut(image, (2, 3, 6, 7), 4, (0, 0, 0)))
    assert np.array_equal(inside, pixels[3:7, 2:6])
    edge = np.asarray(cut(image, (-2, -2, 2, 2), 4, (9, 8, 7)))
    assert (edge[:2, :] == (9, 8, 7)).all() and (edge[:, :2] == (9, 8, 7)).all()
    assert np.array_equal(edge[2:, 2:], pixels[:2, :2])


def test_folder_names_are_safe() -> None:
    assert folder_name("digit 7") == "digit 7"
    assert folder_name("a/b\\c:d") == "a_b_c_d"
    assert folder_name("..") == "_"


def test_export_writes_one_png_per_object_by_class(tmp_path: Path) -> None:
    split = random_split(tmp_path / "data", num_images=8, seed=1)
    summary = export_crops(split, tmp_path / "crops", size=24, progress=False)
    expected = sum(len(r.objects) for r in split.images) - summary.skipped
    files = sorted((tmp_path / "crops" / "train").glob("*/*.png"))
    assert summary.total == expected == len(files) > 0
    assert {f.parent.name for f in files} <= set(CLASS_NAMES) and set(summary.counts) == {f.parent.name for f in files}
    assert all(Image.open(f).size == (24, 24) for f in files)
    with pytest.raises(FileExistsError, match="already exists"):
        export_crops(split, tmp_path / "crops", progress=False)
    again = export_crops(split, tmp_path / "crops", size=16, overwrite=True, progress=False)
    assert again.total == expected and Image.open(next((tmp_path / "crops" / "train").glob("*/*.png"))).size == (16, 16)


def test_tiny_objects_are_skipped_and_counted(tmp_path: Path) -> None:
    root = tmp_path / "images"
    root.mkdir()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(root / "a.png")
    objects = (ObjectAnnotation((1, 1, 2, 10), 0), ObjectAnnotation((2, 2, 12, 12), 1))
    split = DatasetSplit(["x", "y"], [ImageRecord(1, "a.png", 20, 20, objects)], root, name="val")
    summary = export_crops(split, tmp_path / "out", size=8, progress=False)
    assert summary.counts == {"y": 1} and summary.skipped == 1


def test_cli_crops_feed_classify_folder_loader(tmp_path: Path) -> None:
    data = tmp_path / "coco"
    for name, seed in (("train", 0), ("val", 1)):
        split = random_split(tmp_path / "raw", num_images=12, seed=seed, name=name)
        # every class present in both splits, so the folders agree
        objects = tuple(ObjectAnnotation((5, 5, 30, 30), label) for label in range(len(CLASS_NAMES)))
        split = split.with_images([*split.images[:-1], ImageRecord(99, split.images[-1].file_name,
                                                                     split.images[-1].width,
                                                                     split.images[-1].height, objects)])
        write_split(split, data, "coco")
    out = tmp_path / "crops"
    done = subprocess.run([sys.executable, "-m", "detect", "data", "crops", str(data), "--out", str(out),
                           "--size", "20", "--mode", "warp"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "| all |" in done.stdout and f"crops to {out / 'train'}" in done.stdout
    splits = load_data(str(out))
    assert splits.class_names == tuple(sorted(CLASS_NAMES)) and splits.val_name == "val"
    assert len(splits.test) == len(splits.val) > 0  # train/ + val/ folders: val is also the test split
    image, label = splits.train[0]
    assert tuple(image.shape) == (3, 20, 20) and 0 <= label < len(CLASS_NAMES)
    again = subprocess.run([sys.executable, "-m", "detect", "data", "crops", str(data), "--out", str(out)],
                           cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr


def test_negative_windows_avoid_objects_and_prefer_strokes() -> None:
    pixels = np.full((100, 100, 3), 120, np.uint8)
    pixels[60:90, 10:40:4] = 255  # stripes: the only busy object-free place
    objects = [ObjectAnnotation((50.0, 5.0, 80.0, 35.0), 0)]  # a 30-px object on flat ground
    windows = negative_windows(pixels, objects, 20, np.random.default_rng(0), context=0.0)
    assert len(windows) == 20
    boxes = np.array([o.box for o in objects])
    for x1, y1, x2, y2 in windows:
        assert x2 - x1 == pytest.approx(30.0) and y2 - y1 == pytest.approx(30.0)
        assert 0 <= x1 and 0 <= y1 and x2 <= 100 and y2 <= 100
        assert box_ioa(boxes, np.array([[x1, y1, x2, y2]])).max() <= NEGATIVE_MAX_COVER
    striped = sum(1 for x1, y1, x2, y2 in windows if x1 < 40 and x2 > 10 and y1 < 90 and y2 > 60)
    assert striped >= 15  # the busiest of the candidates, nearly always on the stripes
    covered = [ObjectAnnotation((0.0, 0.0, 100.0, 100.0), 0)]
    assert negative_windows(pixels, covered, 3, np.random.default_rng(0)) == []  # no room: none


def test_export_cuts_seeded_negatives_into_a_background_class(tmp_path: Path) -> None:
    split = random_split(tmp_path / "data", num_images=6, seed=2)
    summary = export_crops(split, tmp_path / "a", size=16, negatives=2, progress=False)
    files = sorted((tmp_path / "a" / "train" / BACKGROUND).glob("*.png"))
    assert 0 < summary.counts[BACKGROUND] == len(files) <= 12
    again = export_crops(split, tmp_path / "b", size=16, negatives=2, progress=False)
    assert again.counts == summary.counts
    assert all(np.array_equal(np.asarray(Image.open(f)), np.asarray(Image.open(tmp_path / "b" / "train" /
                                                                                BACKGROUND / f.name)))
               for f in files)
    with pytest.raises(ValueError, match="negatives crops must be >= 0"):
        export_crops(split, tmp_path / "c", negatives=-1, progress=False)
    named = DatasetSplit(["background", "x"], split.images[:1], split.image_root, name="train")
    with pytest.raises(ValueError, match="class named 'background'"):
        export_crops(named, tmp_path / "d", negatives=1, progress=False)


def test_jittered_boxes_stay_detections_of_the_object() -> None:
    box = (20.0, 30.0, 32.0, 70.0)  # a thin digit: a small shift costs much IoU
    moved = jittered_boxes(box, 200, np.random.default_rng(0))
    assert len(moved) == 200
    iou = box_iou(np.array(moved), np.array([box]))[:, 0]
    assert iou.min() >= JITTER_MIN_IOU and iou.mean() < 0.9  # moved, yet still a hit at IoU 0.5
    assert len({b[0] for b in moved}) == 200
    assert jittered_boxes(box, 0, np.random.default_rng(0)) == []


def test_partial_windows_are_badly_placed_boxes_on_objects() -> None:
    objects = [ObjectAnnotation((10.0, 10.0, 40.0, 60.0), 0), ObjectAnnotation((50.0, 20.0, 90.0, 50.0), 1)]
    windows = partial_windows(objects, 100, np.random.default_rng(0))
    assert len(windows) == 100
    iou = box_iou(np.array(windows), np.array([o.box for o in objects]))
    low, high = PARTIAL_IOU
    assert (iou.max(axis=1) >= low).all() and (iou.max(axis=1) < high).all()
    assert (iou.argmax(axis=1) == 0).any() and (iou.argmax(axis=1) == 1).any()  # around either object
    assert partial_windows([], 3, np.random.default_rng(0)) == []


def test_export_adds_jittered_copies_and_partial_background_crops(tmp_path: Path) -> None:
    split = random_split(tmp_path / "data", num_images=6, seed=2)
    plain = export_crops(split, tmp_path / "a", size=16, progress=False)
    more = export_crops(split, tmp_path / "b", size=16, jitter=2, partial=1, progress=False)
    objects = plain.total
    assert sum(c for name, c in more.counts.items() if name != BACKGROUND) == 3 * objects
    copies = sorted((tmp_path / "b" / "train").glob("*/*_j1.png"))
    assert len(copies) == objects
    partial = sorted((tmp_path / "b" / "train" / BACKGROUND).glob("*_p0.png"))
    assert 0 < len(partial) == more.counts[BACKGROUND] <= 6
    for f in (tmp_path / "a" / "train").glob("*/*.png"):  # the objects' own crops are unchanged
        same = tmp_path / "b" / "train" / f.parent.name / f.name
        assert np.array_equal(np.asarray(Image.open(f)), np.asarray(Image.open(same)))
    with pytest.raises(ValueError, match="jitter crops must be >= 0"):
        export_crops(split, tmp_path / "c", jitter=-1, progress=False)
