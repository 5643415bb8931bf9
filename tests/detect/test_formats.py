"""Dataset formats: exact round trips, the VOC pixel convention, lenient and strict reading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import CLASS_NAMES, boxes_and_labels, random_split
from PIL import Image

from detect.data.coco import read_coco, write_coco
from detect.data.convert import convert
from detect.data.dataset import DetectionDataset
from detect.data.formats import available_splits, detect_format, load_split, read_split, write_split
from detect.data.problems import DatasetError
from detect.data.voc import read_voc, voc_xml
from detect.data.yolo_txt import label_line
from detect.structures import ImageRecord, ObjectAnnotation


def assert_same_boxes(a, b, tol: float = 1e-6) -> None:
    left, right = boxes_and_labels(a), boxes_and_labels(b)
    assert left.keys() == right.keys()
    for stem in left:
        assert [lab for _, lab in left[stem]] == [lab for _, lab in right[stem]], stem
        if left[stem]:
            diff = np.abs(np.array([box for box, _ in left[stem]]) - np.array([box for box, _ in right[stem]]))
            assert diff.max() <= tol, (stem, diff.max())


@pytest.fixture()
def coco_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "coco"
    for seed, name in enumerate(("train", "val")):
        write_coco(random_split(root, num_images=6, seed=seed, name=name), root)
    return root


def test_round_trip_coco_voc_yolo_coco(coco_dataset: Path, tmp_path: Path) -> None:
    convert(coco_dataset, tmp_path / "voc", to="voc")
    convert(tmp_path / "voc", tmp_path / "yolo", to="yolo")
    convert(tmp_path / "yolo", tmp_path / "coco2", to="coco")
    for split in ("train", "val"):
        original = load_split(coco_dataset, split)
        assert original.num_objects() > 0
        for fmt, path in (("voc", tmp_path / "voc"), ("yolo", tmp_path / "yolo"), ("coco", tmp_path / "coco2")):
            again = load_split(path, split)
            assert detect_format(path) == fmt
            assert again.class_names == CLASS_NAMES
            assert_same_boxes(original, again)
            assert [(r.width, r.height) for r in again.images] == [(r.width, r.height) for r in original.images]
    final = load_split(tmp_path / "coco2", "train")
    assert [r.image_id for r in final.images] == [r.image_id for r in load_split(coco_dataset, "train").images]


def test_converted_images_are_links_or_copies_that_decode(coco_dataset: Path, tmp_path: Path) -> None:
    convert(coco_dataset, tmp_path / "yolo", to="yolo", splits=["val"])
    split = load_split(tmp_path / "yolo", "val")
    assert available_splits(tmp_path / "yolo") == ["val"]
    image, target = DetectionDataset(split)[0]
    assert image.shape == (3, split.images[0].height, split.images[0].width)


def test_voc_pixel_convention_is_one_based_inclusive() -> None:
    record = ImageRecord(1, "a.jpg", 20, 10, (ObjectAnnotation(box=(0.0, 2.0, 10.0, 7.0), label=0),))
    xml = voc_xml(record, ["x"], "a.jpg")
    assert "<xmin>1</xmin>" in xml and "<ymin>3</ymin>" in xml
    assert "<xmax>10</xmax>" in xml and "<ymax>7</ymax>" in xml


def test_voc_difficult_and_truncated_survive(tmp_path: Path) -> None:
    split = random_split(tmp_path / "src", num_images=3, seed=3)
    record = split.images[0]
    obj = ObjectAnnotation(box=(1.0, 1.0, 9.0, 9.0), label=2, difficult=True, truncated=True)
    split = split.with_images([ImageRecord(record.image_id, record.file_name, record.width, record.height, (obj,))])
    write_split(split, tmp_path / "voc", "voc")
    again, problems = read_voc(tmp_path / "voc", "train")
    assert problems == []
    assert again.images[0].objects == (obj,)


def test_yolo_label_line_is_normalised_cxcywh() -> None:
    obj = ObjectAnnotation(box=(10.0, 20.0, 30.0, 60.0), label=1)
    assert label_line(obj, width=100, height=200) == "1 0.2 0.2 0.2 0.2"


def test_coco_category_ids_with_gaps_are_kept(tmp_path: Path) -> None:
    data = {
        "images": [{"id": 7, "file_name": "x.jpg", "width": 50, "height": 40}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 90, "bbox": [1, 2, 3, 4], "iscrowd": 1}],
        "categories": [{"id": 90, "name": "toothbrush"}, {"id": 1, "name": "person"}],
    }
    path = tmp_path / "instances_val.json"
    path.write_text(json.dumps(data))
    split, problems = read_coco(path)
    assert problems == [] and split.name == "val"
    assert split.class_names == ["person", "toothbrush"] and split.category_ids == [1, 90]
    obj = split.images[0].objects[0]
    assert obj.label == 1 and obj.box == (1.0, 2.0, 4.0, 6.0) and obj.iscrowd


def test_dataset_yields_documented_target(coco_dataset: Path) -> None:
    split = load_split(coco_dataset, "train")
    dataset = DetectionDataset(split)
    index = next(i for i, r in enumerate(split.images) if r.objects)
    image, target = dataset[index]
    record = split.images[index]
    assert image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
    assert target["boxes"].dtype == torch.float32 and target["boxes"].shape == (len(record.objects), 4)
    assert target["labels"].dtype == torch.int64
    assert target["image_id"] == record.image_id and target["orig_size"] == (record.height, record.width)
    torch.testing.assert_close(target["boxes"], torch.tensor([o.box for o in record.objects], dtype=torch.float32))


def test_dataset_handles_images_without_objects(coco_dataset: Path) -> None:
    split = load_split(coco_dataset, "train")
    record = split.images[0]
    empty = split.with_images([ImageRecord(record.image_id, record.file_name, record.width, record.height)])
    _, target = DetectionDataset(empty)[0]
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)


def test_dataset_reports_corrupt_image_by_path(coco_dataset: Path) -> None:
    split = load_split(coco_dataset, "train")
    split.image_path(split.images[0]).write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"cannot decode image .*train_000\.jpg"):
        DetectionDataset(split)[0]


def test_strict_load_lists_every_problem(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text("names: [a, b]\ntrain: images/train\n")
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    Image.new("RGB", (10, 10)).save(tmp_path / "images" / "train" / "x.png")
    (tmp_path / "labels" / "train" / "x.txt").write_text("0 0.5 0.5 0.2 0.2\n5 0.5 0.5 0.1 0.1\n0 0.5 zz 0.1 0.1\n")
    split, problems = read_split(tmp_path, "train")
    assert len(split.images[0].objects) == 1
    assert [(p.index, p.line) for p in problems] == [(1, 2), (2, 3)]
    assert "class id 5 is outside 0..1" in problems[0].message
    with pytest.raises(DatasetError, match="2 problem"):
        load_split(tmp_path, "train")


@pytest.mark.parametrize(
    "text, message",
    [("", "annotation file is empty"), ("{\"images\": [", "not valid JSON"), ("[]", "expected a JSON object")],
)
def test_bad_coco_files_are_reported(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "instances_train.json"
    path.write_text(text)
    _, problems = read_coco(path)
    assert len(problems) == 1 and message in problems[0].message and problems[0].file == str(path)


def test_unknown_format_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot tell the format"):
        detect_format(tmp_path)
    with pytest.raises(FileNotFoundError, match="dataset not found"):
        detect_format(tmp_path / "nope")
    with pytest.raises(ValueError, match="unknown dataset format 'kitti'"):
        write_split(random_split(tmp_path), tmp_path / "out", "kitti")
