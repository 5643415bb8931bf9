"""``detect validate``: every defect of a dataset, each named by file and object index."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tqdm import tqdm

from classify.base.images import ImageDecodeError, ImageTooLargeError, open_image
from detect.data.formats import available_splits, detect_format, read_split
from detect.data.problems import Problem
from detect.structures import DatasetSplit, ImageRecord

BOX_TOLERANCE = 0.5  # pixels a box may stick out of the image before it counts as outside


def validate_dataset(
    path: Path, fmt: str | None = None, splits: list[str] | None = None, check_images: bool = True,
    progress: bool = True,
) -> list[Problem]:
    """Read every split of the dataset at ``path`` and return all problems found.

    Checks: annotation files parse; every split has images; class names/ids are known; image
    ids are unique; images exist, are not empty, decode fully and have the annotated size; boxes
    have positive size and lie inside the image.
    """
    fmt = fmt or detect_format(Path(path))
    problems: list[Problem] = []
    for name in splits or available_splits(path, fmt):
        split, read_problems = read_split(path, name, fmt)
        problems += read_problems
        if not split.images and not read_problems:
            problems.append(Problem(str(path), f"split '{name}' has no images; expected at least one"))
        problems += duplicate_id_problems(split)
        records = tqdm(split.images, desc=f"validate {name}", unit="img", disable=not progress, leave=False)
        for record in records:
            problems += box_problems(split, record)
            if check_images:
                problems += image_problems(split, record)
    return problems


def annotation_problems(split: DatasetSplit) -> list[Problem]:
    """Duplicate image ids, then every box of non-positive size, outside its image or with a label
    out of range (:func:`box_problems`), image by image; no image is decoded."""
    problems = duplicate_id_problems(split)
    for record in split.images:
        problems += box_problems(split, record)
    return problems


def duplicate_id_problems(split: DatasetSplit) -> list[Problem]:
    counts = Counter(r.image_id for r in split.images)
    return [
        Problem(str(split.image_path(r)), f"duplicate image id {r.image_id} ({counts[r.image_id]} images share it)")
        for r in split.images if counts[r.image_id] > 1
    ]


def box_problems(split: DatasetSplit, record: ImageRecord) -> list[Problem]:
    """Boxes with non-positive size or outside the image, and labels out of range."""
    problems = []
    file = str(split.image_path(record))
    for index, obj in enumerate(record.objects):
        x1, y1, x2, y2 = obj.box
        if x2 <= x1 or y2 <= y1:
            problems.append(Problem(file, f"box {_fmt_box(obj.box)} has non-positive size "
                                          f"({x2 - x1:g} x {y2 - y1:g})", index=index))
        elif x1 < -BOX_TOLERANCE or y1 < -BOX_TOLERANCE or x2 > record.width + BOX_TOLERANCE \
                or y2 > record.height + BOX_TOLERANCE:
            problems.append(Problem(file, f"box {_fmt_box(obj.box)} lies outside the "
                                          f"{record.width}x{record.height} image", index=index))
        if not 0 <= obj.label < len(split.class_names):
            problems.append(Problem(file, f"label {obj.label} is outside 0..{len(split.class_names) - 1}", index=index))
    return problems


def image_problems(split: DatasetSplit, record: ImageRecord) -> list[Problem]:
    """The image exists, is not empty, is within the pixel limit, decodes to the end and has the annotated size."""
    path = split.image_path(record)
    file = str(path)
    if not path.is_file():
        return [Problem(file, "image file not found")]
    if path.stat().st_size == 0:
        return [Problem(file, "image file is empty (0 bytes)")]
    try:
        with open_image(path) as im:  # refuses an image over the pixel limit before decoding it
            size = im.size
            im.load()
    except ImageTooLargeError as e:
        return [Problem(file, e.reason)]
    except ImageDecodeError as e:
        return [Problem(file, f"image does not decode: {e.reason}")]
    except Exception as e:  # noqa: BLE001 - PIL raises many types for corrupt files
        return [Problem(file, f"image does not decode: {e}")]
    if size != (record.width, record.height):
        return [Problem(file, f"annotated size {record.width}x{record.height} but the image is {size[0]}x{size[1]}")]
    return []


def _fmt_box(box: tuple[float, float, float, float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in box) + ")"
