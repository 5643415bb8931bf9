"""Detections on disk: COCO results JSON and ultralytics YOLO txt, exact round trips, clear errors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import CLASS_NAMES, random_split

from detect.evaluation.results_io import (
    detect_results_format,
    empty_output,
    read_coco_results,
    read_results,
    read_yolo_predictions,
    write_coco_results,
    write_yolo_predictions,
)
from detect.structures import DatasetSplit, ImageRecord, ObjectAnnotation


def fake_outputs(split: DatasetSplit, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Random detections inside each image; image 1 gets none."""
    rng = np.random.default_rng(seed)
    outputs = []
    for i, record in enumerate(split.images):
        m = 0 if i == 1 else int(rng.integers(1, 5))
        xy = rng.uniform(0, [record.width - 10, record.height - 10], size=(m, 2))
        wh = rng.uniform(1, 9, size=(m, 2))
        outputs.append({
            "boxes": torch.tensor(np.concatenate([xy, xy + wh], axis=1), dtype=torch.float32).reshape(-1, 4),
            "scores": torch.tensor(rng.uniform(0.001, 1, m), dtype=torch.float32),
            "labels": torch.tensor(rng.integers(0, len(split.class_names), m), dtype=torch.int64),
        })
    return outputs


@pytest.fixture
def split(tmp_path: Path) -> DatasetSplit:
    return random_split(tmp_path / "src", num_images=6, seed=3, name="val")


def assert_same_outputs(a: list[dict], b: list[dict], tol: float = 1e-6) -> None:
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        assert x["labels"].tolist() == y["labels"].tolist(), i
        assert x["boxes"].shape == y["boxes"].shape, i
        if len(x["labels"]):
            assert torch.allclose(x["boxes"].double(), y["boxes"].double(), atol=tol, rtol=0), i
            assert torch.allclose(x["scores"].double(), y["scores"].double(), atol=tol, rtol=0), i


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


# ------------------------------------------------------------------------------------- round trips


def test_coco_round_trip_is_exact(split: DatasetSplit, tmp_path: Path) -> None:
    outputs = fake_outputs(split)
    assert any(len(o["labels"]) == 0 for o in outputs)  # images without detections are covered
    path = write_coco_results(split, outputs, tmp_path / "results.json")
    back = read_coco_results(split, path)
    assert_same_outputs(outputs, back, tol=1e-6)
    entries = json.loads(path.read_text())
    assert len(entries) == sum(len(o["labels"]) for o in outputs)
    first = next(i for i, o in enumerate(outputs) if len(o["labels"]))
    x1, y1, x2, y2 = outputs[first]["boxes"][0].double().tolist()
    assert entries[0]["image_id"] == split.images[first].image_id
    assert entries[0]["category_id"] == int(outputs[first]["labels"][0]) + 1  # no category_ids: label + 1
    assert entries[0]["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=1e-9)
    assert back[first]["boxes"].dtype == torch.float64 and back[first]["labels"].dtype == torch.int64


def test_coco_category_ids_are_mapped(split: DatasetSplit, tmp_path: Path) -> None:
    split.category_ids = [10, 20, 33]  # COCO-style ids with gaps
    outputs = fake_outputs(split, seed=1)
    path = write_coco_results(split, outputs, tmp_path / "r.json")
    written = {e["category_id"] for e in json.loads(path.read_text())}
    assert written <= {10, 20, 33} and written
    assert_same_outputs(outputs, read_coco_results(split, path))


def test_coco_string_image_id_matches_file_stem(split: DatasetSplit, tmp_path: Path) -> None:
    """ultralytics' save_json writes the file stem as image_id when the stem is not a number."""
    record = split.images[2]
    path = write_json(tmp_path / "r.json", [
        {"image_id": Path(record.file_name).stem, "category_id": 2, "bbox": [1.5, 2.0, 3.0, 4.0], "score": 0.5}])
    outputs = read_coco_results(split, path)
    assert outputs[2]["boxes"].tolist() == [[1.5, 2.0, 4.5, 6.0]]
    assert outputs[2]["labels"].tolist() == [1] and outputs[2]["scores"].tolist() == [0.5]
    assert all(len(o["labels"]) == 0 for i, o in enumerate(outputs) if i != 2)


def test_yolo_round_trip_is_exact(split: DatasetSplit, tmp_path: Path) -> None:
    outputs = fake_outputs(split, seed=2)
    folder = write_yolo_predictions(split, outputs, tmp_path / "preds")
    empty = [Path(r.file_name).stem for r, o in zip(split.images, outputs) if len(o["labels"]) == 0]
    assert empty and not any((folder / f"{stem}.txt").exists() for stem in empty)  # like ultralytics
    assert_same_outputs(outputs, read_yolo_predictions(split, folder), tol=1e-6)


def test_yolo_reads_ultralytics_lines_and_run_folder(split: DatasetSplit, tmp_path: Path) -> None:
    record = split.images[0]
    labels = tmp_path / "predict" / "labels"
    labels.mkdir(parents=True)
    # ultralytics writes ("%g " * 6).rstrip() % (cls, cx, cy, w, h, conf)
    (labels / f"{Path(record.file_name).stem}.txt").write_text("2 0.5 0.25 0.5 0.1 0.875\n\n1 0.1 0.1 0.2 0.2 0.5\n")
    outputs = read_results(split, tmp_path / "predict")  # the run folder holding labels/
    w, h = record.width, record.height
    expected = [[0.25 * w, 0.2 * h, 0.75 * w, 0.3 * h], [0.0, 0.0, 0.2 * w, 0.2 * h]]
    assert np.allclose(outputs[0]["boxes"].numpy(), expected, atol=1e-9)
    assert outputs[0]["labels"].tolist() == [2, 1] and outputs[0]["scores"].tolist() == [0.875, 0.5]
    assert all(len(o["labels"]) == 0 for o in outputs[1:])


def test_format_detection(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text("[]")
    (tmp_path / "labels").mkdir()
    (tmp_path / "r.txt").write_text("")
    assert detect_results_format(tmp_path / "r.json") == "coco"
    assert detect_results_format(tmp_path / "labels") == "yolo"
    with pytest.raises(ValueError, match="expected a COCO results .json file or a folder"):
        detect_results_format(tmp_path / "r.txt")
    with pytest.raises(FileNotFoundError, match="predictions not found"):
        detect_results_format(tmp_path / "nope.json")


def test_empty_list_means_no_detections(split: DatasetSplit, tmp_path: Path) -> None:
    outputs = read_coco_results(split, write_json(tmp_path / "r.json", []))
    assert len(outputs) == len(split.images)
    assert all(o["boxes"].shape == (0, 4) and o["labels"].shape == (0,) for o in outputs)
    assert empty_output()["boxes"].shape == (0, 4)


# ------------------------------------------------------------------------------------- COCO errors

GOOD = {"image_id": 1, "category_id": 1, "bbox": [1.0, 2.0, 3.0, 4.0], "score": 0.9}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the predictions file is empty"),
        ("   \n", "the predictions file is empty"),
        ("[{", "not valid JSON"),
        (json.dumps({"images": [], "annotations": []}), r"got a dict \(that looks like a ground-truth file"),
        (json.dumps([GOOD, 5]), r"detection \[1\]: expected an object"),
        (json.dumps([GOOD, {"image_id": 1, "bbox": [0, 0, 1, 1], "score": 1}]),
         r"detection \[1\]: missing key\(s\) \['category_id'\]"),
        (json.dumps([GOOD, GOOD, {**GOOD, "image_id": 999}]), r"detection \[2\]: image_id 999 is not an image"),
        (json.dumps([{**GOOD, "image_id": True}]), r"detection \[0\]: image_id True is not an image"),
        (json.dumps([{**GOOD, "category_id": 4}]),
         r"detection \[0\]: category_id 4 is not a category of the ground truth \(known: 1=cat, 2=dog, 3=digit 7\)"),
        (json.dumps([{**GOOD, "bbox": [0, 0, 1]}]), r"detection \[0\]: expected 'bbox' as \[x, y, w, h\]"),
        (json.dumps([{**GOOD, "bbox": [0, 0, 1, "2"]}]), r"expected 'bbox' as \[x, y, w, h\] numbers"),
        ('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, NaN, 1], "score": 1}]',
         r"detection \[0\]: bbox has a non-finite value"),
        (json.dumps([{**GOOD, "bbox": [5, 5, -1, 2]}]), r"detection \[0\]: bbox \[x, y, w, h\] has a negative size \(w=-1"),
        ('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": Infinity}]',
         r"expected a finite number as 'score', got inf"),
        (json.dumps([{**GOOD, "score": "high"}]), r"expected a finite number as 'score', got 'high'"),
    ],
)
def test_coco_bad_input(split: DatasetSplit, tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        read_coco_results(split, path)
    assert str(path) in str(info.value)


def test_coco_missing_file(split: DatasetSplit, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="predictions file not found"):
        read_coco_results(split, tmp_path / "absent.json")


def test_unknown_image_id_names_the_range(split: DatasetSplit, tmp_path: Path) -> None:
    path = write_json(tmp_path / "r.json", [{**GOOD, "image_id": 77}])
    with pytest.raises(ValueError, match=r"split 'val' \(6 images, ids 1\.\.6\)"):
        read_coco_results(split, path)


# ------------------------------------------------------------------------------------- YOLO errors


def write_pred(folder: Path, stem: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.txt"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 0.5 0.5 0.1 0.1 0.9\n0 0.5 0.5 0.1 0.1\n", r":2: expected 6 fields 'class cx cy w h conf', got 5 \(no confidence"),
        ("0 0.5 0.5 0.1 0.1 0.9 7\n", r":1: expected 6 fields .* got 7"),
        ("\n\n3 0.5 0.5 0.1 0.1 0.9\n", r":3: class 3 is outside 0\.\.2 \(the ground truth has 3 classes\)"),
        ("-1 0.5 0.5 0.1 0.1 0.9\n", r":1: class -1 is outside 0\.\.2"),
        ("a 0.5 0.5 0.1 0.1 0.9\n", r":1: expected an integer class and 5 numbers"),
        ("0 0.5 nan 0.1 0.1 0.9\n", r":1: non-finite value"),
        ("0 0.5 0.5 -0.1 0.1 0.9\n", r":1: negative box size \(w=-0\.1"),
    ],
)
def test_yolo_bad_lines(split: DatasetSplit, tmp_path: Path, text: str, message: str) -> None:
    path = write_pred(tmp_path / "preds", Path(split.images[1].file_name).stem, text)
    with pytest.raises(ValueError, match=message) as info:
        read_yolo_predictions(split, tmp_path / "preds")
    assert str(info.value).startswith(str(path) + ":")


def test_yolo_file_without_image(split: DatasetSplit, tmp_path: Path) -> None:
    write_pred(tmp_path / "preds", Path(split.images[0].file_name).stem, "0 0.5 0.5 0.1 0.1 0.9\n")
    stray = write_pred(tmp_path / "preds", "holiday_photo", "0 0.5 0.5 0.1 0.1 0.9\n")
    with pytest.raises(ValueError, match="matches no image of the ground truth split 'val'") as info:
        read_yolo_predictions(split, tmp_path / "preds")
    assert str(stray) in str(info.value) and "val_000" in str(info.value)


def test_yolo_empty_folder_and_missing_folder(split: DatasetSplit, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no prediction files \(<image stem>\.txt\)"):
        read_yolo_predictions(split, tmp_path / "empty")
    with pytest.raises(NotADirectoryError, match="YOLO predictions folder not found"):
        read_yolo_predictions(split, tmp_path / "absent")


def test_yolo_refuses_shared_stems(tmp_path: Path) -> None:
    obj = ObjectAnnotation((1.0, 1.0, 5.0, 5.0), 0)
    split = DatasetSplit(list(CLASS_NAMES), [ImageRecord(1, "a/x.jpg", 10, 10, (obj,)),
                                             ImageRecord(2, "b/x.jpg", 10, 10, ())], tmp_path)
    outputs = [empty_output(), empty_output()]
    with pytest.raises(ValueError, match="'a/x.jpg' and 'b/x.jpg' share the stem 'x'"):
        write_yolo_predictions(split, outputs, tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_writers_check_alignment_and_labels(split: DatasetSplit, tmp_path: Path) -> None:
    outputs = fake_outputs(split)
    with pytest.raises(ValueError, match=r"expected one per image of the split \(6\), got 5"):
        write_coco_results(split, outputs[:5], tmp_path / "r.json")
    with pytest.raises(TypeError, match="expected a list of dicts"):
        write_coco_results(split, outputs[0], tmp_path / "r.json")
    bad = [dict(o) for o in outputs]
    i = next(i for i, o in enumerate(bad) if len(o["labels"]))
    bad[i]["labels"] = torch.full_like(bad[i]["labels"], 3)
    with pytest.raises(ValueError, match=rf"image_id {split.images[i].image_id} detection 0: label 3 outside 0\.\.2"):
        write_yolo_predictions(split, bad, tmp_path / "p")


def test_read_results_unknown_format(split: DatasetSplit, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown predictions format 'voc'; expected one of \('coco', 'yolo'\)"):
        read_results(replace(split), tmp_path, fmt="voc")
