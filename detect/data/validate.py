"""``detect validate``: every defect of a dataset, each named by file and object index."""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tqdm import tqdm

from classify.base.images import ImageDecodeError, ImageTooLargeError, open_image
from detect.data.formats import available_splits, detect_format, read_split
from detect.data.problems import Problem
from detect.data.voc import LABELS_FILE, class_name_occurrences, read_labels_file
from detect.structures import DatasetSplit, ImageRecord

BOX_TOLERANCE = 0.5  # pixels a box may stick out of the image before it counts as outside
NAME_SIMILARITY = 0.8  # difflib ratio from which two class names count as near-duplicates


def validate_dataset(
    path: Path, fmt: str | None = None, splits: list[str] | None = None, check_images: bool = True,
    progress: bool = True, report: Callable[[str], None] | None = None,
) -> list[Problem]:
    """Read every split of the dataset at ``path`` and return all problems found.

    Checks: annotation files parse; every split has images; class names/ids are known; image
    ids are unique; images exist, are not empty, decode fully and have the annotated size; boxes
    have positive size and lie inside the image. A VOC dataset without ``labels.txt`` takes its
    classes from the names found: they are passed to ``report`` with their object counts, and
    near-duplicate names are problems (:func:`near_duplicate_class_problems`).
    """
    fmt = fmt or detect_format(Path(path))
    problems: list[Problem] = []
    for name in splits or available_splits(path, fmt):
        problems += _split_problems(Path(path), name, fmt, check_images, progress)
        if fmt == "voc" and read_labels_file(path) is None:
            problems += inferred_class_problems(Path(path), name, report)
    return problems


def _split_problems(path: Path, name: str, fmt: str, check_images: bool, progress: bool) -> list[Problem]:
    split, problems = read_split(path, name, fmt)
    if not split.images and not problems:
        problems.append(Problem(str(path), f"split '{name}' has no images; expected at least one"))
    problems += duplicate_id_problems(split)
    records = tqdm(split.images, desc=f"validate {name}", unit="img", disable=not progress, leave=False)
    for record in records:
        problems += box_problems(split, record)
        if check_images:
            problems += image_problems(split, record)
    return problems


def inferred_class_problems(root: Path, split: str, report: Callable[[str], None] | None = None) -> list[Problem]:
    """A VOC split whose classes are the names found (no ``labels.txt``): pass them with their
    object counts to ``report``, and return :func:`near_duplicate_class_problems`."""
    occurrences = class_name_occurrences(root, None if split == "all" else split)
    if report is not None and occurrences:
        listing = ", ".join(f"{name!r}: {len(where)}" for name, where in occurrences.items())
        report(f"{root}: no {LABELS_FILE}, so the classes are the names found in split '{split}' "
               f"(objects each): {listing}")
    return near_duplicate_class_problems(occurrences)


def near_duplicate_class_problems(occurrences: Mapping[str, Sequence[tuple[str, int]]]) -> list[Problem]:
    """Every object whose class name looks like another, more frequent name, by file and object index.

    ``occurrences``: name -> ``(file, object index)`` of each object carrying it. Looks alike:
    equal up to case and spacing (``Person``, ``traffic  light``), or a ``difflib`` close match
    (ratio >= :data:`NAME_SIMILARITY`) of the case-folded names (``persn`` / ``person``). Of two
    such names the rarer is flagged (on a tie, the later one in sort order), against the most
    frequent name it looks like.
    """
    counts = {name: len(where) for name, where in occurrences.items()}
    problems = []
    for name, where in occurrences.items():
        twin, how = _likely_twin(name, counts)
        if twin is None:
            continue
        message = (f"class name {name!r} ({counts[name]} object(s)) {how} {twin!r} ({counts[twin]} object(s)); "
                   f"without {LABELS_FILE} every name found is a class: fix the name, or list the classes in "
                   f"{LABELS_FILE} if both are meant")
        problems += [Problem(file, message, index=index) for file, index in where]
    return problems


def _likely_twin(name: str, counts: Mapping[str, int]) -> tuple[str | None, str]:
    """The most frequent name that ``name`` looks like, and how; ``(None, "")`` when none."""
    rivals = [other for other in counts if (counts[other], name) > (counts[name], other)]
    if not rivals:
        return None, ""
    close = set(difflib.get_close_matches(name.casefold(), [o.casefold() for o in rivals], n=len(rivals),
                                          cutoff=NAME_SIMILARITY))
    alike = {other: "is a close spelling of" for other in rivals if other.casefold() in close}
    alike.update({other: "differs only in case or spacing from" for other in rivals
                  if _name_key(other) == _name_key(name)})
    if not alike:
        return None, ""
    twin = max(alike, key=lambda other: (counts[other], alike[other].startswith("differs")))
    return twin, alike[twin]


def _name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


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
