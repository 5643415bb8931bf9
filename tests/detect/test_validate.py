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
from detect.data.formats import convert
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
