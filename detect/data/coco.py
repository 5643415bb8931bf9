"""COCO JSON: ``annotations/instances_<split>.json`` + ``images/<split>/``.

COCO boxes are ``[x, y, w, h]`` in continuous pixels; they become xyxy on load and go back to
xywh on write. Category ids may be any integers (COCO itself uses 1..90 with gaps): classes are
ordered by id and ``DatasetSplit.category_ids`` remembers the ids for writing and for scoring
results files.

An annotation's ``area`` (in real COCO the segmentation's, which decides whether the object
counts as small, medium or large) is kept as ``ObjectAnnotation.annotated_area`` and written
back; where it is missing, the box area is written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from detect.data.files import place_image, write_json_atomic
from detect.data.problems import Problem
from detect.structures import DatasetSplit, ImageRecord, ObjectAnnotation


def split_name_from_json(json_path: Path) -> str:
    """``instances_val2017.json`` -> ``val2017``; any other name -> its stem."""
    stem = json_path.stem
    return stem.split("instances_", 1)[1] if stem.startswith("instances_") else stem


def default_image_root(json_path: Path, split: str) -> Path:
    """Where images live for the standard layout ``<root>/annotations/<json>``."""
    root = json_path.parent.parent if json_path.parent.name == "annotations" else json_path.parent
    for candidate in (root / "images" / split, root / split, root / "images"):
        if candidate.is_dir():
            return candidate
    return json_path.parent


def read_coco(json_path: Path, image_root: Path | None = None) -> tuple[DatasetSplit, list[Problem]]:
    """Read a COCO detection JSON. Returns the split and every problem found (not raised)."""
    json_path = Path(json_path)
    name = split_name_from_json(json_path)
    root = Path(image_root) if image_root else default_image_root(json_path, name)
    split = DatasetSplit(class_names=[], images=[], image_root=root, name=name)
    data, problems = _load_json(json_path)
    if data is None:
        return split, problems
    file = str(json_path)
    categories, problems_c = _parse_categories(data.get("categories"), file)
    images, problems_i = _parse_images(data.get("images"), file)
    objects, problems_a = _parse_annotations(data.get("annotations"), file, images, categories)
    split.class_names = [cat_name for _, cat_name in categories]
    split.category_ids = [cat_id for cat_id, _ in categories]
    split.images = [
        ImageRecord(img_id, fname, w, h, tuple(objects.get(img_id, ())))
        for img_id, (fname, w, h) in images.items()
    ]
    return split, problems + problems_c + problems_i + problems_a


def _load_json(json_path: Path) -> tuple[dict[str, Any] | None, list[Problem]]:
    file = str(json_path)
    if not json_path.is_file():
        return None, [Problem(file, "annotation file not found")]
    text = json_path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        return None, [Problem(file, "annotation file is empty")]
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        return None, [Problem(file, f"not valid JSON: {e.msg} (column {e.colno})", line=e.lineno)]
    if not isinstance(data, dict):
        return None, [Problem(file, f"expected a JSON object at the top, got {type(data).__name__}")]
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data.get(k), list)]
    if missing:
        return None, [Problem(file, f"expected lists under the keys {missing}")]
    return data, []


def _parse_categories(raw: list[Any], file: str) -> tuple[list[tuple[int, str]], list[Problem]]:
    problems: list[Problem] = []
    seen: dict[int, str] = {}
    for i, cat in enumerate(raw):
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or not isinstance(cat.get("name"), str):
            problems.append(Problem(file, f"categories[{i}]: expected {{'id': int, 'name': str}}, got {cat!r}"))
        elif cat["id"] in seen:
            problems.append(Problem(file, f"categories[{i}]: duplicate category id {cat['id']}"))
        else:
            seen[cat["id"]] = cat["name"]
    return sorted(seen.items()), problems


def _parse_images(raw: list[Any], file: str) -> tuple[dict[int, tuple[str, int, int]], list[Problem]]:
    problems: list[Problem] = []
    images: dict[int, tuple[str, int, int]] = {}
    for i, img in enumerate(raw):
        ok = isinstance(img, dict) and isinstance(img.get("id"), int) and isinstance(img.get("file_name"), str)
        ok = ok and all(isinstance(img.get(k), int) and img[k] > 0 for k in ("width", "height"))
        if not ok:
            problems.append(Problem(file, f"images[{i}]: expected id, file_name and positive width/height, got {img!r}"))
        elif img["id"] in images:
            problems.append(Problem(file, f"images[{i}]: duplicate image id {img['id']} ({img['file_name']})"))
        else:
            images[img["id"]] = (img["file_name"], img["width"], img["height"])
    return images, problems


def _parse_annotations(
    raw: list[Any], file: str, images: dict[int, tuple[str, int, int]], categories: list[tuple[int, str]]
) -> tuple[dict[int, list[ObjectAnnotation]], list[Problem]]:
    label_of = {cat_id: label for label, (cat_id, _) in enumerate(categories)}
    problems: list[Problem] = []
    objects: dict[int, list[ObjectAnnotation]] = {}
    seen_per_image: dict[int, int] = {}  # object index = order among the image's annotations
    for i, ann in enumerate(raw):
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        if image_id not in images:
            problems.append(Problem(file, f"annotations[{i}]: image_id {image_id!r} is not in 'images'"))
            continue
        index = seen_per_image.get(image_id, 0)
        seen_per_image[image_id] = index + 1
        obj, message = _parse_annotation(ann, label_of)
        if obj is None:
            where = f"annotations[{i}] (image {images[image_id][0]})"
            problems.append(Problem(file, f"{where}: {message}", index=index))
        else:
            objects.setdefault(image_id, []).append(obj)
    return objects, problems


def _parse_annotation(ann: dict[str, Any], label_of: dict[int, int]) -> tuple[ObjectAnnotation | None, str]:
    cat = ann.get("category_id")
    if cat not in label_of:
        return None, f"unknown category_id {cat!r}; known ids are {sorted(label_of)}"
    bbox = ann.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
        return None, f"expected 'bbox' as [x, y, w, h] numbers, got {bbox!r}"
    if not all(math.isfinite(v) for v in bbox):
        return None, f"bbox has a non-finite value: {bbox}"
    area = ann.get("area")
    if area is not None and not _is_area(area):
        return None, f"expected 'area' as a non-negative number (pixels²), got {area!r}"
    x, y, w, h = (float(v) for v in bbox)
    return ObjectAnnotation(
        box=(x, y, x + w, y + h),
        label=label_of[cat],
        iscrowd=bool(ann.get("iscrowd", 0)),
        difficult=bool(ann.get("difficult", 0)),
        truncated=bool(ann.get("truncated", 0)),
        annotated_area=None if area is None else float(area),
    ), ""


def _is_area(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def coco_dict(split: DatasetSplit) -> dict[str, Any]:
    """The split as a COCO detection dict (boxes xywh; ``area`` the annotated one, else the box's;
    ``difficult``/``truncated`` kept as extras)."""
    images, annotations = [], []
    for record in split.images:
        images.append({"id": record.image_id, "file_name": record.file_name,
                       "width": record.width, "height": record.height})
        for obj in record.objects:
            ann = {
                "id": len(annotations) + 1,
                "image_id": record.image_id,
                "category_id": split.category_id(obj.label),
                "bbox": [obj.box[0], obj.box[1], obj.width, obj.height],
                "area": obj.area,
                "iscrowd": int(obj.iscrowd),
            }
            ann.update({k: 1 for k in ("difficult", "truncated") if getattr(obj, k)})
            annotations.append(ann)
    categories = [{"id": split.category_id(i), "name": n} for i, n in enumerate(split.class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_coco(split: DatasetSplit, root: Path) -> Path:
    """Write ``root/annotations/instances_<name>.json`` and link images into ``root/images/<name>/``."""
    root = Path(root)
    image_dir = root / "images" / split.name
    for record in split.images:
        place_image(split.image_path(record), image_dir / record.file_name)
    json_path = root / "annotations" / f"instances_{split.name}.json"
    write_json_atomic(json_path, coco_dict(split))
    return json_path
