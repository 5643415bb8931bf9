"""One entry point for every dataset format: detect it, read a split, write a split (converting:
:mod:`detect.data.convert`).

Formats and what ``path`` names:

* ``coco``: a ``instances_<split>.json`` file, or a folder with ``annotations/instances_*.json``
* ``voc``:  a folder with ``Annotations/`` (and ``ImageSets/Main/<split>.txt``)
* ``yolo``: a ``data.yaml`` file, or a folder holding one
"""

from __future__ import annotations

from pathlib import Path

from detect.data.coco import read_coco, write_coco
from detect.data.problems import DatasetError, Problem
from detect.data.voc import read_voc, write_voc
from detect.data.yolo_txt import read_data_yaml, read_yolo, write_yolo
from detect.structures import DatasetSplit

FORMATS = ("coco", "voc", "yolo")


def detect_format(path: Path) -> str:
    """Guess the format of the dataset at ``path`` (ValueError when it is none of them)."""
    path = Path(path)
    if path.is_file():
        if path.suffix == ".json":
            return "coco"
        if path.suffix in (".yaml", ".yml"):
            return "yolo"
    elif path.is_dir():
        if (path / "data.yaml").is_file():
            return "yolo"
        if (path / "Annotations").is_dir():
            return "voc"
        if any((path / "annotations").glob("instances_*.json")):
            return "coco"
    elif not path.exists():
        raise FileNotFoundError(f"dataset not found: {path}")
    raise ValueError(
        f"cannot tell the format of {path}: expected a COCO .json (or a folder with annotations/instances_*.json), "
        "a VOC folder with Annotations/, or a YOLO data.yaml (or a folder holding one)"
    )


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown dataset format {fmt!r}; expected one of {FORMATS}")
    return fmt


def available_splits(path: Path, fmt: str | None = None) -> list[str]:
    """Names of the splits stored at ``path``."""
    path, fmt = Path(path), _check_format(fmt or detect_format(path))
    if fmt == "coco":
        if path.is_file():
            return [path.stem.removeprefix("instances_")]
        return sorted(p.stem.removeprefix("instances_") for p in (path / "annotations").glob("instances_*.json"))
    if fmt == "voc":
        sets = sorted(p.stem for p in (path / "ImageSets" / "Main").glob("*.txt"))
        return sets or ["all"]
    data = read_data_yaml(_yolo_yaml(path))
    return [s for s in ("train", "val", "test") if data.get(s)]


def _yolo_yaml(path: Path) -> Path:
    return path if path.is_file() else path / "data.yaml"


def read_split(
    path: Path, split: str | None = None, fmt: str | None = None
) -> tuple[DatasetSplit, list[Problem]]:
    """Read one split leniently: the records that parsed, and every problem found."""
    path, fmt = Path(path), _check_format(fmt or detect_format(path))
    split = split or _default_split(path, fmt)
    if fmt == "coco":
        json_path = path if path.is_file() else path / "annotations" / f"instances_{split}.json"
        return read_coco(json_path)
    if fmt == "voc":
        return read_voc(path, None if split == "all" else split)
    return read_yolo(_yolo_yaml(path), split)


def _default_split(path: Path, fmt: str) -> str:
    splits = available_splits(path, fmt)
    if not splits:
        raise ValueError(f"{path}: no splits found")
    return "train" if "train" in splits else splits[0]


def load_split(path: Path, split: str | None = None, fmt: str | None = None) -> DatasetSplit:
    """Read one split strictly: raises :class:`DatasetError` listing every problem."""
    data, problems = read_split(path, split, fmt)
    if problems:
        raise DatasetError(problems)
    return data


def write_split(split: DatasetSplit, root: Path, fmt: str) -> Path:
    """Write ``split`` under ``root`` in ``fmt``; images are hard-linked (or copied) there."""
    writers = {"coco": write_coco, "voc": write_voc, "yolo": write_yolo}
    return writers[_check_format(fmt)](split, Path(root))
