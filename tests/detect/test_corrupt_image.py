"""An undecodable image is reported with Pillow's reason, also once ultralytics has wrapped ``Image.open``.

ultralytics replaces ``PIL.Image.open`` on import; its wrapper answered a file Pillow cannot
identify with "No module named 'pi_heif'" (an optional plugin it tries to load), which
``detect eval --model`` and ``detect bench`` then showed instead of the real reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classify.base.images import pillow_open
from classify.data.datasets import read_image as classify_read_image
from detect.data.coco import write_coco
from detect.data.convert import convert
from detect.data.formats import load_split, read_split
from detect.data.image_io import read_image
from detect.data.problems import Problem
from detect.data.validate import validate_dataset
from detect.structures import DatasetSplit, ImageRecord, ObjectAnnotation
from detect.tasks.bench import run_bench
from detect.tasks.evaluate import run_evaluation


@pytest.fixture(scope="module", autouse=True)
def ultralytics_wraps_image_open() -> None:
    """The condition of the defect: ultralytics imported, ``Image.open`` replaced by its wrapper."""
    import ultralytics.utils.patches  # noqa: F401

    assert Image.open.__module__ == "ultralytics.utils.patches"


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, Path]:
    """A 3-image COCO dataset whose second image is a ``.png`` of garbage bytes; (root, that file)."""
    folder = tmp_path / "src"
    folder.mkdir()
    records = []
    for i in range(3):
        Image.fromarray(np.full((32, 40, 3), 70 * i, dtype=np.uint8)).save(folder / f"im{i}.png")
        records.append(ImageRecord(i + 1, f"im{i}.png", 40, 32, (ObjectAnnotation((4.0, 4.0, 30.0, 28.0), 0),)))
    (folder / "im1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    root = write_coco(DatasetSplit(["blob"], records, folder, "val"), tmp_path / "coco").parent.parent
    split = load_split(root, "val")
    return root, split.image_path(split.images[1])


def reason(path: Path) -> str:
    return f"cannot identify image file '{path}'"


def test_pillow_open_unwraps_ultralytics() -> None:
    assert pillow_open().__module__ == "PIL.Image" and Image.open is not pillow_open()


def test_read_image_gives_pillows_reason(dataset) -> None:
    _, bad = dataset
    with pytest.raises(ValueError) as info:
        read_image(bad)
    assert str(info.value) == f"cannot decode image {bad}: {reason(bad)}"
    with pytest.raises(ValueError) as info:
        classify_read_image(bad, 3, None)
    assert str(info.value) == f"cannot decode image {bad}: {reason(bad)}"


def test_eval_model_path_gives_pillows_reason(dataset, tmp_path: Path) -> None:
    """``detect eval --model``: the registry model's inputs are decoded by ``read_image``."""
    root, bad = dataset
    with pytest.raises(ValueError) as info:
        run_evaluation(root, model="yolov8n", image_size=32, out_dir=tmp_path / "e", num_examples=0)
    assert str(info.value) == f"cannot decode image {bad}: {reason(bad)}"


def test_bench_gives_pillows_reason(dataset, tmp_path: Path) -> None:
    """``detect bench --dataset``: the timed images are decoded by ``read_image``."""
    root, bad = dataset
    with pytest.raises(ValueError) as info:
        run_bench(["yolov8n"], [32], [3], tmp_path / "bench", dataset=root, split="val", warmup=0, iterations=1)
    assert str(info.value) == f"cannot decode image {bad}: {reason(bad)}"


def test_validate_and_yolo_header_give_pillows_reason(dataset, tmp_path: Path) -> None:
    root, bad = dataset
    assert validate_dataset(root, progress=False) == [Problem(str(bad), f"image does not decode: {reason(bad)}")]
    convert(root, tmp_path / "yolo", to="yolo")
    linked = tmp_path / "yolo" / "images" / "val" / bad.name
    _, problems = read_split(tmp_path / "yolo", "val")
    assert problems == [Problem(str(linked), f"cannot read the image header: {reason(linked)}")]
