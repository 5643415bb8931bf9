"""One pixel limit for every image decode, checked from the header before any pixel is decoded."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from classify.base import images
from classify.base.images import ImageTooLargeError, check_image_file
from classify.data.datasets import read_image as classify_read_image
from classify.data.datasets import scan_image_folder
from classify.inspect.filters import load_grayscale
from classify.inspect.viz import prepare_image
from detect.cli import main as detect_main
from detect.data.coco import write_coco
from detect.data.convert import convert
from detect.data.formats import load_split, read_split
from detect.data.image_io import read_image
from detect.data.problems import Problem
from detect.data.validate import validate_dataset
from detect.evaluation.results_io import write_coco_results
from detect.structures import DatasetSplit, ImageRecord, ObjectAnnotation

LIMIT_NOTE = "(classify.base.images.MAX_IMAGE_PIXELS)"


def png_header(path: Path, width: int, height: int) -> Path:
    """A ~70-byte PNG whose header claims ``width x height`` RGB pixels (a decompression bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(16)))
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Sizes of the images Pillow was asked to decode (the decode itself is refused)."""
    calls: list[tuple[int, int]] = []

    def load(self: ImageFile.ImageFile) -> None:
        calls.append(self.size)
        raise OSError("decoding was attempted")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return calls


def test_the_limit_is_pillows_default_warning_threshold() -> None:
    assert images.MAX_IMAGE_PIXELS == 89_478_485 == 2**30 // 4 // 3


def test_read_image_refuses_bomb_headers_without_decoding(tmp_path: Path, decoded: list) -> None:
    over = png_header(tmp_path / "over.png", 10_000, 10_000)  # over the limit, under Pillow's own refusal
    with pytest.raises(ImageTooLargeError) as info:
        read_image(over)
    assert str(info.value) == (f"refusing to decode image {over}: image is 10000x10000 = 100000000 pixels, "
                               f"over the limit of 89478485 pixels {LIMIT_NOTE}")
    huge = png_header(tmp_path / "huge.png", 20_000, 20_000)  # Pillow refuses it while opening
    with pytest.raises(ImageTooLargeError) as info:
        read_image(huge)
    assert str(info.value) == (f"refusing to decode image {huge}: image is 400000000 pixels, "
                               f"over the limit of 89478485 pixels {LIMIT_NOTE}")
    assert info.value.path == huge and isinstance(info.value, ValueError)
    assert decoded == []


@pytest.fixture
def photo(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A 40x30 RGB PNG (1200 pixels) and its pixels."""
    pixels = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    path = tmp_path / "cls" / "photo.png"
    path.parent.mkdir()
    Image.fromarray(pixels).save(path)
    return path, pixels


def test_the_limit_is_inclusive(photo, monkeypatch: pytest.MonkeyPatch) -> None:
    path, pixels = photo
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 1200)
    assert torch.equal(read_image(path), torch.from_numpy(pixels).permute(2, 0, 1))
    assert check_image_file(path) == (40, 30)


def test_every_decode_path_refuses_an_image_over_a_lowered_limit(photo, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = photo
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 1199)
    reason = f"image is 40x30 = 1200 pixels, over the limit of 1199 pixels {LIMIT_NOTE}"
    decoders = {
        "detect read_image": read_image,
        "classify read_image": lambda p: classify_read_image(p, 3, None),
        "classify folder scan": lambda p: scan_image_folder(p.parent.parent),
        "classify load_grayscale (OpenCV)": load_grayscale,
        "classify prepare_image (OpenCV)": lambda p: prepare_image(p, 20, (0.5,) * 3, (0.5,) * 3),
    }
    for name, decode in decoders.items():
        with pytest.raises(ImageTooLargeError) as info:
            decode(path)
        assert str(info.value) == f"refusing to decode image {path}: {reason}", name


def test_validate_and_yolo_reading_report_the_limit(photo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = photo
    box = ObjectAnnotation((2.0, 3.0, 20.0, 25.0), 0)
    split = DatasetSplit(["thing"], [ImageRecord(1, path.name, 40, 30, (box,))], path.parent, "train")
    coco = write_coco(split, tmp_path / "coco").parent.parent
    convert(coco, tmp_path / "yolo", to="yolo")
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 1199)
    reason = f"image is 40x30 = 1200 pixels, over the limit of 1199 pixels {LIMIT_NOTE}"
    coco_image = tmp_path / "coco" / "images" / "train" / path.name
    assert validate_dataset(coco, progress=False) == [Problem(str(coco_image), reason)]
    _, problems = read_split(tmp_path / "yolo", "train")
    assert problems == [Problem(str(tmp_path / "yolo" / "images" / "train" / path.name), reason)]


def test_eval_predictions_refuses_a_bomb_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The examples plot decodes images: a bomb there is refused, not drawn as a placeholder of its size."""
    folder = tmp_path / "src"
    folder.mkdir()
    records = []
    for i in range(2):
        Image.fromarray(np.full((30, 40, 3), 60 * i, dtype=np.uint8)).save(folder / f"im{i}.png")
        records.append(ImageRecord(i + 1, f"im{i}.png", 40, 30, (ObjectAnnotation((5.0, 5.0, 30.0, 25.0), 0),)))
    png_header(folder / "bomb.png", 20_000, 20_000)
    records.append(ImageRecord(3, "bomb.png", 20_000, 20_000, (ObjectAnnotation((0.0, 0.0, 50.0, 50.0), 0),)))
    split = DatasetSplit(["thing"], records, folder, "val")
    gt = write_coco(split, tmp_path / "coco")
    outputs = [{"boxes": torch.tensor([list(r.objects[0].box)]), "scores": torch.tensor([0.9]),
                "labels": torch.tensor([0])} for r in records]
    results = write_coco_results(split, outputs, tmp_path / "results.json")
    out = tmp_path / "eval"
    code = detect_main(["eval", str(gt), "--predictions", str(results), "--out", str(out)])
    bomb = load_split(gt, "val").image_path(records[2])
    assert code == 2
    assert capsys.readouterr().err == (f"error: refusing to decode image {bomb}: image is 400000000 pixels, "
                                       f"over the limit of 89478485 pixels {LIMIT_NOTE}\n")
    assert list(out.iterdir()) == []  # no partial outputs
