"""``detect validate`` finds each planted defect, names its file and object, exits non-zero."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import random_split
from PIL import Image

from detect.cli import main
from detect.data.coco import write_coco
from detect.data.convert import convert
from detect.data.problems import DatasetError, Problem
from detect.data.validate import validate_dataset

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "detect", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture()
def clean_coco(tmp_path: Path) -> Path:
    root = tmp_path / "clean"
    write_coco(random_split(root, num_images=8, seed=1, name="train"), root)
    return root


def plant_coco_defects(root: Path) -> dict[str, str]:
    """Break a COCO copy; returns the expected problem text fragments by name."""
    json_path = root / "annotations" / "instances_train.json"
    data = json.loads(json_path.read_text())
    images = {img["id"]: img for img in data["images"]}
    anns = data["annotations"]
    first = anns[0]
    first["bbox"] = [first["bbox"][0], first["bbox"][1], 0, 5]                     # non-positive size
    second = next(a for a in anns if a["image_id"] != first["image_id"])
    second["bbox"] = [-20, 0, 10, 10]                                               # outside the image
    anns.append({"id": 999, "image_id": first["image_id"], "category_id": 42, "bbox": [1, 1, 2, 2]})  # unknown class
    data["images"].append(dict(images[2], id=2))                                    # duplicate image id
    json_path.write_text(json.dumps(data))
    image_dir = root / "images" / "train"
    (image_dir / images[3]["file_name"]).unlink()                                   # missing image
    (image_dir / images[4]["file_name"]).write_bytes(b"")                           # empty image
    jpeg = (image_dir / images[5]["file_name"]).read_bytes()
    (image_dir / images[5]["file_name"]).write_bytes(jpeg[: len(jpeg) // 2])        # truncated image
    (image_dir / images[6]["file_name"]).write_bytes(b"GIF89a garbage")             # corrupt image
    first_index = [a["id"] for a in anns if a["image_id"] == first["image_id"]].index(first["id"])
    second_index = [a["id"] for a in anns if a["image_id"] == second["image_id"]].index(second["id"])
    unknown_index = sum(a["image_id"] == first["image_id"] for a in anns) - 1
    name = {i: img["file_name"] for i, img in images.items()}
    return {
        "non-positive": f"{name[first['image_id']]}: object {first_index}: box",
        "outside": f"{name[second['image_id']]}: object {second_index}: box (-20, 0, -10, 10) lies outside",
        "unknown class": f"object {unknown_index}: annotations[{len(anns) - 1}] (image {name[first['image_id']]}): unknown category_id 42",
        "duplicate id": "images[8]: duplicate image id 2",
        "missing": f"{name[3]}: image file not found",
        "empty": f"{name[4]}: image file is empty",
        "truncated": f"{name[5]}: image does not decode",
        "corrupt": f"{name[6]}: image does not decode",
    }


def test_clean_dataset_has_no_problems(clean_coco: Path) -> None:
    assert validate_dataset(clean_coco, progress=False) == []
    result = run_cli("validate", clean_coco)
    assert result.returncode == 0 and "no problems found" in result.stdout


def test_every_planted_coco_defect_is_reported(clean_coco: Path) -> None:
    expected = plant_coco_defects(clean_coco)
    result = run_cli("validate", clean_coco)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    for what, fragment in expected.items():
        assert fragment in result.stdout, f"{what}: {fragment!r} not in\n{result.stdout}"
    assert f"{len(result.stdout.splitlines())} problem(s)" in result.stderr


def test_yolo_and_voc_defects_name_file_line_and_index(clean_coco: Path, tmp_path: Path) -> None:
    convert(clean_coco, tmp_path / "yolo", to="yolo")
    convert(clean_coco, tmp_path / "voc", to="voc")
    label = sorted((tmp_path / "yolo" / "labels" / "train").glob("*.txt"))[0]
    label.write_text("0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.1 0.1\n0 0.5\n")
    xml = sorted(p for p in (tmp_path / "voc" / "Annotations").glob("*.xml") if "<object>" in p.read_text())
    xml[0].write_text(re.sub(r"<name>[^<]*</name>", "<name>zebra</name>", xml[0].read_text(), count=1))
    xml[1].write_text("<annotation><size>")
    yolo = run_cli("validate", tmp_path / "yolo")
    assert yolo.returncode == 1 and "Traceback" not in yolo.stderr
    assert f"{label}:2: object 1: class id 7 is outside 0..2" in yolo.stdout
    assert f"{label}:3: object 2: expected 5 fields" in yolo.stdout
    voc = run_cli("validate", tmp_path / "voc")
    assert voc.returncode == 1 and "Traceback" not in voc.stderr
    assert f"{xml[0]}: object 0: unknown class name 'zebra'" in voc.stdout
    assert f"{xml[1]}:1: not valid XML" in voc.stdout


def test_convert_refuses_a_broken_dataset_without_traceback(clean_coco: Path, tmp_path: Path) -> None:
    plant_coco_defects(clean_coco)
    result = run_cli("convert", clean_coco, tmp_path / "out", "--to", "yolo")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and "unknown category_id 42" in result.stderr


def test_missing_dataset_is_a_one_line_error(tmp_path: Path) -> None:
    result = run_cli("validate", tmp_path / "nothing")
    assert result.returncode == 2 and result.stderr.strip() == f"error: dataset not found: {tmp_path / 'nothing'}"


def coco_with_bad_boxes(root: Path) -> tuple[Path, Path, Path]:
    """Two images: the first's object 1 has a negative width, the second's object 0 lies outside it."""
    (root / "annotations").mkdir(parents=True)
    (root / "images" / "train").mkdir(parents=True)
    images = [{"id": 1, "file_name": "a.png", "width": 40, "height": 30},
              {"id": 2, "file_name": "b.png", "width": 50, "height": 40}]
    for img in images:
        Image.new("RGB", (img["width"], img["height"])).save(root / "images" / "train" / img["file_name"])
    boxes = [(1, [2, 2, 10, 10]), (1, [20, 5, -6, 10]), (2, [45, 30, 20, 20]), (2, [1, 1, 5, 5])]
    anns = [{"id": i + 1, "image_id": image_id, "category_id": 1, "bbox": bbox, "area": 1.0, "iscrowd": 0}
            for i, (image_id, bbox) in enumerate(boxes)]
    data = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "thing"}]}
    (root / "annotations" / "instances_train.json").write_text(json.dumps(data))
    return root, root / "images" / "train" / "a.png", root / "images" / "train" / "b.png"


def test_convert_reports_every_bad_box_like_validate_and_writes_nothing(tmp_path: Path, capsys) -> None:
    src, a, b = coco_with_bad_boxes(tmp_path / "src")
    expected = [Problem(str(a), "box (20, 5, 14, 15) has non-positive size (-6 x 10)", index=1),
                Problem(str(b), "box (45, 30, 65, 50) lies outside the 50x40 image", index=0)]
    assert validate_dataset(src, progress=False) == expected
    for to in ("coco", "voc", "yolo"):
        with pytest.raises(DatasetError) as info:
            convert(src, tmp_path / to, to=to)
        assert info.value.problems == expected
        assert not (tmp_path / to).exists()
    assert main(["convert", str(src), str(tmp_path / "out"), "--to", "yolo"]) == 1  # validate's exit code
    assert capsys.readouterr().err == (
        f"error: 2 problem(s) in the dataset:\n"
        f"  {a}: object 1: box (20, 5, 14, 15) has non-positive size (-6 x 10)\n"
        f"  {b}: object 0: box (45, 30, 65, 50) lies outside the 50x40 image\n"
        f"nothing was written to {tmp_path / 'out'}\n")
    assert not (tmp_path / "out").exists()


def test_convert_checks_every_split_before_writing_any(tmp_path: Path) -> None:
    src, _, b = coco_with_bad_boxes(tmp_path / "src")
    write_coco(random_split(src, num_images=3, seed=2, name="val"), src)  # a clean split beside the broken one
    with pytest.raises(DatasetError) as info:
        convert(src, tmp_path / "out", to="yolo")
    assert [(p.file, p.index) for p in info.value.problems] == [(str(src / "images" / "train" / "a.png"), 1),
                                                                  (str(b), 0)]
    assert not (tmp_path / "out").exists()
    assert len(convert(src, tmp_path / "val_only", to="yolo", splits=["val"])) == 1  # a clean split converts


def voc_layout_message(found: str) -> str:
    return ("expected a Pascal VOC folder: Annotations/<name>.xml, JPEGImages/<name>.jpg, optionally "
            f"ImageSets/Main/<split>.txt and labels.txt; found {found}")


def test_validate_voc_without_annotations_is_a_problem_not_a_clean_pass(clean_coco: Path, tmp_path: Path,
                                                                       capsys) -> None:
    convert(clean_coco, tmp_path / "voc", to="voc")
    flat = tmp_path / "flat"  # the XMLs and images side by side, no VOC folders
    flat.mkdir()
    xml = sorted((tmp_path / "voc" / "Annotations").glob("*.xml"))[0]
    (flat / xml.name).write_bytes(xml.read_bytes())
    (flat / "notes").mkdir()
    cases = {
        flat: f"a folder without Annotations/, holding notes/, {xml.name}",
        flat / xml.name: f"a file ({xml.name}), not a folder: give the folder that holds Annotations/",
    }
    (tmp_path / "empty" / "Annotations").mkdir(parents=True)
    cases[tmp_path / "empty"] = "an Annotations/ folder without .xml files"
    for path, found in cases.items():
        assert validate_dataset(path, fmt="voc", progress=False) == [Problem(str(path), voc_layout_message(found))]
        assert main(["validate", str(path), "--format", "voc"]) == 1
        out, err = capsys.readouterr()
        assert out == f"{path}: {voc_layout_message(found)}\n" and "no problems found" not in out
        assert err.splitlines()[-1] == f"1 problem(s) found in {path}"  # after tqdm's bar


def test_a_split_without_images_is_a_problem(tmp_path: Path) -> None:
    json_path = tmp_path / "annotations" / "instances_train.json"
    json_path.parent.mkdir(parents=True)
    json_path.write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"}]}))
    assert validate_dataset(tmp_path, progress=False) == [
        Problem(str(tmp_path), "split 'train' has no images; expected at least one")]


VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]


@pytest.fixture()
def voc_without_labels(tmp_path: Path) -> tuple[Path, list[Path]]:
    """Six images, objects 'person', 'car' and 'traffic light' in a fixed pattern; labels.txt removed."""
    from detect.data.voc import write_voc
    from detect.structures import DatasetSplit, ImageRecord, ObjectAnnotation

    (tmp_path / "img").mkdir()
    records = []
    for i in range(6):
        Image.new("RGB", (32, 24)).save(tmp_path / "img" / f"{i}.png")
        labels = [1, 0] if i % 2 else [1, 2, 1]
        objects = tuple(ObjectAnnotation((1.0 + k, 1.0, 10.0 + k, 9.0), label) for k, label in enumerate(labels))
        records.append(ImageRecord(i + 1, f"{i}.png", 32, 24, objects))
    write_voc(DatasetSplit(["car", "person", "traffic light"], records, tmp_path / "img", "train"), tmp_path / "voc")
    (tmp_path / "voc" / "labels.txt").unlink()
    return tmp_path / "voc", [tmp_path / "voc" / "Annotations" / f"{i}.xml" for i in range(6)]


def rename_object(xml: Path, index: int, name: str) -> None:
    parts = re.split(r"(<name>[^<]*</name>)", xml.read_text())
    parts[2 * index + 1] = f"<name>{name}</name>"
    xml.write_text("".join(parts))


def test_voc_without_labels_lists_classes_and_flags_near_duplicates(voc_without_labels, capsys) -> None:
    root, xml = voc_without_labels
    rename_object(xml[2], 2, "persn")             # a typo
    rename_object(xml[3], 1, "Car")               # case
    rename_object(xml[4], 1, "traffic  light")    # spacing
    rename_object(xml[5], 0, "PERSN")             # the typo again, upper case: a near-duplicate of the typo
    lines: list[str] = []
    problems = validate_dataset(root, progress=False, report=lines.append)
    assert lines == [f"{root}: no labels.txt, so the classes are the names found in split 'train' (objects each): "
                     "'Car': 1, 'PERSN': 1, 'car': 2, 'persn': 1, 'person': 7, 'traffic  light': 1, "
                     "'traffic light': 2"]
    tail = ("without labels.txt every name found is a class: fix the name, or list the classes in labels.txt "
            "if both are meant")
    case, close = "differs only in case or spacing from", "is a close spelling of"
    assert problems == [
        Problem(str(xml[3]), f"class name 'Car' (1 object(s)) {case} 'car' (2 object(s)); {tail}", index=1),
        Problem(str(xml[5]), f"class name 'PERSN' (1 object(s)) {close} 'person' (7 object(s)); {tail}", index=0),
        Problem(str(xml[2]), f"class name 'persn' (1 object(s)) {close} 'person' (7 object(s)); {tail}", index=2),
        Problem(str(xml[4]), f"class name 'traffic  light' (1 object(s)) {case} 'traffic light' (2 object(s)); {tail}",
                index=1),
    ]
    assert main(["validate", str(root)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == lines[0] and out[1:] == [str(p) for p in problems]


def test_voc_without_labels_but_clean_names_passes_and_still_lists_classes(voc_without_labels, capsys) -> None:
    root, _ = voc_without_labels
    assert main(["validate", str(root)]) == 0
    assert capsys.readouterr().out == (
        f"{root}: no labels.txt, so the classes are the names found in split 'train' (objects each): "
        f"'car': 3, 'person': 9, 'traffic light': 3\n{root}: no problems found\n")


def test_pascal_voc_class_names_are_not_near_duplicates() -> None:
    from detect.data.validate import near_duplicate_class_problems

    assert near_duplicate_class_problems({name: [("a.xml", 0)] for name in VOC_CLASSES}) == []
    flagged = near_duplicate_class_problems({**{name: [("a.xml", 0)] * 5 for name in VOC_CLASSES},
                                             "motorbke": [("b.xml", 3)], "Sofa": [("c.xml", 1)]})
    assert [(p.file, p.index, p.message.split(";")[0]) for p in flagged] == [
        ("b.xml", 3, "class name 'motorbke' (1 object(s)) is a close spelling of 'motorbike' (5 object(s))"),
        ("c.xml", 1, "class name 'Sofa' (1 object(s)) differs only in case or spacing from 'sofa' (5 object(s))")]


def test_voc_with_labels_file_lists_nothing_extra(voc_without_labels, capsys) -> None:
    root, xml = voc_without_labels
    (root / "labels.txt").write_text("car\nperson\ntraffic light\n")
    rename_object(xml[2], 2, "persn")
    lines: list[str] = []
    problems = validate_dataset(root, progress=False, report=lines.append)
    assert lines == []
    assert [(p.file, p.index, p.message) for p in problems] == [
        (str(xml[2]), 2, "unknown class name 'persn'; known classes are ['car', 'person', 'traffic light']")]
