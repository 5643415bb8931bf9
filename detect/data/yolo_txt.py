"""YOLO txt (ultralytics layout): ``data.yaml`` + ``images/<split>/`` + ``labels/<split>/*.txt``.

Each label line is ``class cx cy w h`` with coordinates normalised by the image width/height.
A missing or empty label file means an image without objects (valid). ``data.yaml`` is written
without a ``path`` key, so ultralytics resolves the split folders against the YAML's own folder.
YOLO txt has no ``difficult``/``iscrowd`` flags and no image ids: ids follow sorted file names.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from classify.base.images import ImageDecodeError, ImageTooLargeError, check_image_file
from detect.data.files import format_number, place_image, write_text_atomic
from detect.data.problems import Problem
from detect.structures import DatasetSplit, ImageRecord, ObjectAnnotation

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def read_data_yaml(yaml_path: Path) -> dict[str, Any]:
    """Load ``data.yaml`` and normalise ``names`` to a list (ValueError on a malformed file)."""
    yaml_path = Path(yaml_path)
    try:
        data = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ValueError(f"{yaml_path}: not valid YAML: {e}") from None
    if not isinstance(data, dict) or "names" not in data:
        raise ValueError(f"{yaml_path}: expected a mapping with a 'names' key, got {type(data).__name__}")
    names = data["names"]
    if isinstance(names, dict):
        if sorted(names) != list(range(len(names))):
            raise ValueError(f"{yaml_path}: 'names' keys must be 0..{len(names) - 1}, got {sorted(names)}")
        names = [names[i] for i in range(len(names))]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{yaml_path}: 'names' must be a list of strings or a {{id: name}} mapping")
    return {**data, "names": names}


def dataset_root(yaml_path: Path, data: dict[str, Any]) -> Path:
    path = data.get("path")
    if path and Path(path).is_absolute():
        return Path(path)
    return (yaml_path.parent / path) if path else yaml_path.parent


def label_path(image_path: Path) -> Path:
    """``.../images/<rest>.jpg`` -> ``.../labels/<rest>.txt`` (the last ``images`` component)."""
    parts = list(image_path.parts)
    last = len(parts) - 1 - parts[::-1].index("images") if "images" in parts else None
    if last is None:
        return image_path.with_suffix(".txt")
    parts[last] = "labels"
    return Path(*parts).with_suffix(".txt")


def list_split_images(yaml_path: Path, split: str) -> tuple[Path, list[Path]]:
    """The image folder (or list file's folder) and the sorted image paths of ``split``."""
    data = read_data_yaml(yaml_path)
    if split not in data:
        raise ValueError(f"{yaml_path}: no '{split}' split; it has {[k for k in data if k != 'names']}")
    source = dataset_root(yaml_path, data) / str(data[split])
    if source.is_dir():
        return source, sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if source.is_file():  # a .txt list of image paths, relative to the dataset root
        root = dataset_root(yaml_path, data)
        lines = [ln.strip() for ln in source.read_text().splitlines() if ln.strip()]
        return root, [root / ln for ln in lines]
    raise ValueError(f"{yaml_path}: split '{split}' points to {source}, which does not exist")


def read_yolo(yaml_path: Path, split: str = "train") -> tuple[DatasetSplit, list[Problem]]:
    """Read one split of a YOLO dataset; problems are returned, not raised."""
    yaml_path = Path(yaml_path)
    names = read_data_yaml(yaml_path)["names"]
    image_root, image_paths = list_split_images(yaml_path, split)
    images, problems = [], []
    for index, image_path in enumerate(image_paths):
        size, problem = _image_size(image_path)
        if problem:
            problems.append(problem)
            continue
        objects, label_problems = read_label_file(label_path(image_path), size, len(names))
        problems += label_problems
        rel = image_path.relative_to(image_root).as_posix()
        images.append(ImageRecord(index + 1, rel, size[0], size[1], tuple(objects)))
    return DatasetSplit(class_names=names, images=images, image_root=image_root, name=split), problems


def _image_size(path: Path) -> tuple[tuple[int, int], Problem | None]:
    """``(width, height)`` from the image's header (an image over the pixel limit is a problem)."""
    try:
        return check_image_file(path), None
    except FileNotFoundError:
        return (0, 0), Problem(str(path), "image not found")
    except ImageTooLargeError as e:
        return (0, 0), Problem(str(path), e.reason)
    except ImageDecodeError as e:
        return (0, 0), Problem(str(path), f"cannot read the image header: {e.reason}")


def read_label_file(
    path: Path, size: tuple[int, int], num_classes: int
) -> tuple[list[ObjectAnnotation], list[Problem]]:
    """Parse one label file for an image of ``size = (width, height)``."""
    if not path.is_file():
        return [], []
    objects, problems = [], []
    width, height = size
    lines = [ln for ln in enumerate(path.read_text().splitlines(), start=1) if ln[1].strip()]
    for index, (line_no, line) in enumerate(lines):
        obj, message = _parse_label_line(line.split(), width, height, num_classes)
        if obj is None:
            problems.append(Problem(str(path), message, index=index, line=line_no))
        else:
            objects.append(obj)
    return objects, problems


def _parse_label_line(fields: list[str], width: int, height: int, num_classes: int) -> tuple[ObjectAnnotation | None, str]:
    if len(fields) != 5:
        return None, f"expected 5 fields 'class cx cy w h', got {len(fields)}: {' '.join(fields)!r}"
    try:
        cls = int(fields[0])
        cx, cy, w, h = (float(v) for v in fields[1:])
    except ValueError:
        return None, f"expected an integer class and 4 numbers, got {' '.join(fields)!r}"
    if not 0 <= cls < num_classes:
        return None, f"class id {cls} is outside 0..{num_classes - 1}"
    if not all(math.isfinite(v) for v in (cx, cy, w, h)):
        return None, f"non-finite coordinate in {' '.join(fields)!r}"
    box = ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)
    return ObjectAnnotation(box=box, label=cls), ""


def label_line(obj: ObjectAnnotation, width: int, height: int) -> str:
    x1, y1, x2, y2 = obj.box
    values = ((x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height)
    return " ".join([str(obj.label), *(format_number(v) for v in values)])


def write_yolo(split: DatasetSplit, root: Path) -> Path:
    """Write the split into ``root`` and add it to ``root/data.yaml``; returns the YAML path."""
    root = Path(root)
    yaml_path = root / "data.yaml"
    data = read_data_yaml(yaml_path) if yaml_path.is_file() else {"names": list(split.class_names)}
    if data["names"] != list(split.class_names):
        raise ValueError(f"{yaml_path} names {data['names']}, but this split has {split.class_names}")
    for record in split.images:
        dst = root / "images" / split.name / record.file_name
        place_image(split.image_path(record), dst)
        lines = "".join(label_line(o, record.width, record.height) + "\n" for o in record.objects)
        write_text_atomic(label_path(dst), lines)
    data[split.name] = f"images/{split.name}"
    data["names"] = dict(enumerate(split.class_names))
    data["nc"] = len(split.class_names)
    write_text_atomic(yaml_path, yaml.safe_dump(data, sort_keys=False))
    return yaml_path
