"""Detections stored on disk, read back for one ground-truth split (and written out again).

Two formats, both aligned with ``split.images`` when read:

* ``coco``: a COCO results JSON, a list of ``{"image_id", "category_id", "bbox": [x, y, w, h],
  "score"}`` (what ``COCO.loadRes`` takes). ``category_id`` is mapped back to a 0-based label with
  ``split.category_ids`` (``label + 1`` when the split has none). ``image_id`` is the split's
  integer id; a string ``image_id`` (ultralytics' ``save_json`` on non-numeric file names) is
  matched to the image's file stem.
* ``yolo``: a folder of ``<image stem>.txt`` files as ultralytics' predictor writes them with
  ``save_txt=True, save_conf=True``: one ``class cx cy w h conf`` line a detection, coordinates
  normalised by the original image's width/height. The folder may be the ``labels/`` folder or
  the run folder that holds it. A missing file means no detections for that image.

Every output is ``{"boxes": float64[M, 4] xyxy absolute pixels, "scores": float64[M],
"labels": int64[M] 0-based}``. float64 keeps the file's own numbers, so the metrics equal
pycocotools run on the same file. Images without detections get empty tensors.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from classify.base.paths import require_file
from detect.data.files import format_number, write_text_atomic
from detect.structures import DatasetSplit, ImageRecord

Output = dict[str, torch.Tensor]
RESULT_FORMATS = ("coco", "yolo")
_COCO_KEYS = ("image_id", "category_id", "bbox", "score")


def empty_output() -> Output:
    """An output with no detections: boxes ``float64[0, 4]``, scores ``float64[0]``, labels ``int64[0]``."""
    return {
        "boxes": torch.zeros((0, 4), dtype=torch.float64),
        "scores": torch.zeros(0, dtype=torch.float64),
        "labels": torch.zeros(0, dtype=torch.int64),
    }


def _make_output(boxes: list[list[float]], scores: list[float], labels: list[int]) -> Output:
    if not boxes:
        return empty_output()
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4),
        "scores": torch.tensor(scores, dtype=torch.float64),
        "labels": torch.tensor(labels, dtype=torch.int64),
    }


def detect_results_format(path: Path) -> str:
    """``"coco"`` for a ``.json`` file, ``"yolo"`` for a folder; ValueError/FileNotFoundError otherwise."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"predictions not found: {path}")
    if path.is_file() and path.suffix.lower() == ".json":
        return "coco"
    if path.is_dir():
        return "yolo"
    raise ValueError(
        f"cannot tell the format of the predictions {path}: expected a COCO results .json file "
        "or a folder of YOLO <image stem>.txt files"
    )


def read_results(split: DatasetSplit, path: Path, fmt: str | None = None) -> list[Output]:
    """Read detections for every image of ``split`` from ``path`` (format detected when ``fmt`` is None)."""
    fmt = fmt or detect_results_format(path)
    if fmt == "coco":
        return read_coco_results(split, path)
    if fmt == "yolo":
        return read_yolo_predictions(split, path)
    raise ValueError(f"unknown predictions format {fmt!r}; expected one of {RESULT_FORMATS}")


# ----------------------------------------------------------------------------------------- COCO


def read_coco_results(split: DatasetSplit, path: Path) -> list[Output]:
    """Read a COCO results JSON (see the module docstring) into outputs aligned with ``split.images``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: empty file, invalid JSON, not a list, an entry without one of the four keys,
            an unknown ``image_id`` or ``category_id``, a non-finite value or a negative box size.
            The message names the file and the entry's list index.
    """
    path = Path(path)
    entries = _load_results_json(path)
    index_of = _image_index(split)
    label_of = {split.category_id(k): k for k in range(len(split.class_names))}
    rows: list[tuple[list[list[float]], list[float], list[int]]] = [([], [], []) for _ in split.images]
    for i, entry in enumerate(entries):
        image_index, box, score, label = _parse_coco_entry(entry, i, path, index_of, label_of, split)
        boxes, scores, labels = rows[image_index]
        boxes.append(box)
        scores.append(score)
        labels.append(label)
    return [_make_output(*row) for row in rows]


def _load_results_json(path: Path) -> list:
    require_file(path, "predictions file")
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise ValueError(f"{path}: the predictions file is empty; expected a JSON list of detections")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: not valid JSON: {e.msg} (column {e.colno})") from None
    if not isinstance(data, list):
        looks_like_gt = isinstance(data, dict) and "annotations" in data
        hint = " (that looks like a ground-truth file, not results)" if looks_like_gt else ""
        raise ValueError(
            f"{path}: expected a JSON list of {{image_id, category_id, bbox, score}} detections, "
            f"got a {type(data).__name__}{hint}"
        )
    return data


def _image_index(split: DatasetSplit) -> dict[int | str, int]:
    """``image_id`` and file stem -> position in ``split.images`` (stems only where unique)."""
    index: dict[int | str, int] = {}
    stems: dict[str, list[int]] = {}
    for i, record in enumerate(split.images):
        index[record.image_id] = i
        stems.setdefault(Path(record.file_name).stem, []).append(i)
    index.update({stem: ids[0] for stem, ids in stems.items() if len(ids) == 1})
    return index


def _parse_coco_entry(
    entry: object, i: int, path: Path, index_of: dict[int | str, int], label_of: dict[int, int], split: DatasetSplit
) -> tuple[int, list[float], float, int]:
    where = f"{path}: detection [{i}]"
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: expected an object with keys {list(_COCO_KEYS)}, got {type(entry).__name__}")
    missing = [k for k in _COCO_KEYS if k not in entry]
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}; expected {list(_COCO_KEYS)}, got {sorted(entry)}")
    image_id, category_id = entry["image_id"], entry["category_id"]
    if isinstance(image_id, bool) or not isinstance(image_id, (int, str)) or image_id not in index_of:
        raise ValueError(
            f"{where}: image_id {image_id!r} is not an image of the ground truth split '{split.name}' "
            f"({len(split.images)} images, ids {_id_range(split)})"
        )
    if isinstance(category_id, bool) or not isinstance(category_id, int) or category_id not in label_of:
        known = ", ".join(f"{cid}={split.class_names[k]}" for cid, k in label_of.items())
        raise ValueError(
            f"{where}: category_id {category_id!r} is not a category of the ground truth "
            f"(known: {known}); the results were made for a different class list"
        )
    return index_of[image_id], _coco_box(entry["bbox"], where), _score(entry["score"], where), label_of[category_id]


def _id_range(split: DatasetSplit) -> str:
    ids = sorted(r.image_id for r in split.images)
    return f"{ids[0]}..{ids[-1]}" if ids else "none"


def _coco_box(bbox: object, where: str) -> list[float]:
    """COCO ``[x, y, w, h]`` -> xyxy, checked."""
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
        raise ValueError(f"{where}: expected 'bbox' as [x, y, w, h] numbers, got {bbox!r}")
    x, y, w, h = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise ValueError(f"{where}: bbox has a non-finite value: {bbox}")
    if w < 0 or h < 0:
        raise ValueError(f"{where}: bbox [x, y, w, h] has a negative size (w={w:g}, h={h:g}): {bbox}")
    return [x, y, x + w, y + h]


def _score(score: object, where: str) -> float:
    if not _is_number(score) or not math.isfinite(float(score)):
        raise ValueError(f"{where}: expected a finite number as 'score', got {score!r}")
    return float(score)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def write_coco_results(split: DatasetSplit, outputs: Sequence[Mapping], path: Path) -> Path:
    """Write ``outputs`` (aligned with ``split.images``; xyxy pixels, 0-based labels) as a COCO results JSON.

    Category ids are ``split.category_id(label)``. Written atomically; returns ``path``.
    """
    path = Path(path)
    _check_aligned(split, outputs)
    entries = []
    for record, out in zip(split.images, outputs):
        for box, score, label in _rows(out, len(split.class_names), record):
            x1, y1, x2, y2 = box
            entries.append({"image_id": record.image_id, "category_id": split.category_id(label),
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score})
    write_text_atomic(path, json.dumps(entries) + "\n")
    return path


def _check_aligned(split: DatasetSplit, outputs: Sequence[Mapping]) -> None:
    if isinstance(outputs, Mapping) or not isinstance(outputs, Sequence):
        raise TypeError(f"outputs: expected a list of dicts (one per image), got {type(outputs).__name__}")
    if len(outputs) != len(split.images):
        raise ValueError(f"outputs: expected one per image of the split ({len(split.images)}), got {len(outputs)}")


def _rows(out: Mapping, num_classes: int, record: ImageRecord) -> list[tuple[list[float], float, int]]:
    boxes = torch.as_tensor(out["boxes"], dtype=torch.float64).reshape(-1, 4).tolist()
    scores = torch.as_tensor(out["scores"], dtype=torch.float64).reshape(-1).tolist()
    labels = torch.as_tensor(out["labels"]).reshape(-1).tolist()
    if not len(boxes) == len(scores) == len(labels):
        raise ValueError(f"image_id {record.image_id}: {len(boxes)} boxes, {len(scores)} scores, {len(labels)} labels")
    for j, label in enumerate(labels):
        if not 0 <= int(label) < num_classes:
            raise ValueError(f"image_id {record.image_id} detection {j}: label {label} outside 0..{num_classes - 1}")
    return [(b, s, int(lab)) for b, s, lab in zip(boxes, scores, labels)]


# ----------------------------------------------------------------------------------------- YOLO


def predictions_folder(path: Path) -> Path:
    """The folder holding the ``.txt`` files: ``path`` itself, or ``path/labels`` for an ultralytics run folder."""
    path = Path(path)
    if not path.is_dir():
        raise NotADirectoryError(f"YOLO predictions folder not found: {path}")
    if not any(path.glob("*.txt")) and (path / "labels").is_dir():
        return path / "labels"
    return path


def read_yolo_predictions(split: DatasetSplit, folder: Path) -> list[Output]:
    """Read ultralytics ``save_txt``/``save_conf`` predictions (see the module docstring).

    Raises:
        ValueError: no ``.txt`` file at all; a file whose stem matches no image of the split;
            two images sharing a stem; a line without 6 fields, with a class outside
            ``0..C-1``, a non-number, a non-finite value or a negative size (message
            ``file:line``).
    """
    folder = predictions_folder(folder)
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise ValueError(f"{folder}: no prediction files (<image stem>.txt); expected ultralytics' save_txt output")
    index_of = _stem_index(split)
    outputs = [empty_output() for _ in split.images]
    for file in files:
        if file.stem not in index_of:
            examples = ", ".join(list(index_of)[:3])
            raise ValueError(
                f"{file}: matches no image of the ground truth split '{split.name}' "
                f"(expected <image stem>.txt, e.g. {examples})"
            )
        i = index_of[file.stem]
        outputs[i] = _read_prediction_file(file, split.images[i], len(split.class_names))
    return outputs


def _stem_index(split: DatasetSplit) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, record in enumerate(split.images):
        stem = Path(record.file_name).stem
        if stem in index:
            other = split.images[index[stem]].file_name
            raise ValueError(
                f"images {other!r} and {record.file_name!r} share the stem {stem!r}; "
                "YOLO prediction files cannot tell them apart (use a COCO results JSON)"
            )
        index[stem] = i
    return index


def _read_prediction_file(file: Path, record: ImageRecord, num_classes: int) -> Output:
    boxes, scores, labels = [], [], []
    for line_no, line in enumerate(file.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        box, score, label = _parse_prediction_line(line.split(), record, num_classes, f"{file}:{line_no}")
        boxes.append(box)
        scores.append(score)
        labels.append(label)
    return _make_output(boxes, scores, labels)


def _parse_prediction_line(fields: list[str], record: ImageRecord, num_classes: int,
                           where: str) -> tuple[list[float], float, int]:
    if len(fields) != 6:
        hint = " (no confidence: predict with save_conf=True)" if len(fields) == 5 else ""
        raise ValueError(
            f"{where}: expected 6 fields 'class cx cy w h conf', got {len(fields)}{hint}: {' '.join(fields)!r}"
        )
    try:
        cls = int(fields[0])
        cx, cy, w, h, conf = (float(v) for v in fields[1:])
    except ValueError:
        raise ValueError(f"{where}: expected an integer class and 5 numbers, got {' '.join(fields)!r}") from None
    if not 0 <= cls < num_classes:
        raise ValueError(
            f"{where}: class {cls} is outside 0..{num_classes - 1} (the ground truth has {num_classes} classes); "
            "the predictions were made for a different class list"
        )
    if not all(math.isfinite(v) for v in (cx, cy, w, h, conf)):
        raise ValueError(f"{where}: non-finite value in {' '.join(fields)!r}")
    if w < 0 or h < 0:
        raise ValueError(f"{where}: negative box size (w={w:g}, h={h:g})")
    W, H = record.width, record.height
    box = [(cx - w / 2) * W, (cy - h / 2) * H, (cx + w / 2) * W, (cy + h / 2) * H]
    return box, conf, cls


def write_yolo_predictions(split: DatasetSplit, outputs: Sequence[Mapping], folder: Path) -> Path:
    """Write ``outputs`` as ``folder/<image stem>.txt`` lines ``class cx cy w h conf`` (normalised).

    Like ultralytics, an image without detections gets no file. Returns ``folder``.
    """
    folder = Path(folder)
    _check_aligned(split, outputs)
    _stem_index(split)  # refuse ambiguous stems before writing anything
    folder.mkdir(parents=True, exist_ok=True)
    for record, out in zip(split.images, outputs):
        rows = _rows(out, len(split.class_names), record)
        if rows:
            lines = "".join(_prediction_line(box, score, label, record) + "\n" for box, score, label in rows)
            write_text_atomic(folder / f"{Path(record.file_name).stem}.txt", lines)
    return folder


def _prediction_line(box: list[float], score: float, label: int, record: ImageRecord) -> str:
    x1, y1, x2, y2 = box
    W, H = record.width, record.height
    values = ((x1 + x2) / 2 / W, (y1 + y2) / 2 / H, (x2 - x1) / W, (y2 - y1) / H, score)
    return " ".join([str(label), *(format_number(v) for v in values)])
