"""Validated per-image inputs shared by every evaluator.

Every evaluator receives the same lists of dicts (the torchvision detection contract):

* target (one per image): ``"image_id"`` int; ``"boxes"`` ``FloatTensor[N, 4]`` xyxy in absolute,
  continuous pixels; ``"labels"`` ``int64[N]``, 0-based; optional ``"iscrowd"`` ``bool[N]``,
  ``"difficult"`` ``bool[N]``, ``"area"`` ``float[N]`` (pixels², default: box area) and
  ``"orig_size"`` ``(H, W)``.
* output (one per image, same order): ``"boxes"`` ``FloatTensor[M, 4]`` xyxy, ``"scores"``
  ``float[M]``, ``"labels"`` ``int64[M]``.

Tensors may live on any device; they are copied to CPU float64 / int64 / bool numpy arrays.
Lists and numpy arrays are accepted too. Every error names the image (its position in the
batch and its ``image_id``) and the offending object index.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class ImageGroundTruth:
    """Ground truth of one image as CPU numpy arrays.

    Attributes:
        image_id: the image's id.
        boxes: ``float64[N, 4]`` xyxy, absolute pixels.
        labels: ``int64[N]``, 0-based class indices.
        iscrowd: ``bool[N]``; crowd regions are never counted as misses.
        difficult: ``bool[N]``; VOC ``difficult`` objects, ignored by the VOC metric.
        area: ``float64[N]`` pixels² used for the COCO size ranges.
        orig_size: ``(H, W)`` of the original image, or ``None``.
    """

    image_id: int
    boxes: np.ndarray
    labels: np.ndarray
    iscrowd: np.ndarray
    difficult: np.ndarray
    area: np.ndarray
    orig_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class ImageDetections:
    """Detections of one image as CPU numpy arrays.

    Attributes:
        image_id: the image's id (copied from the matching target).
        boxes: ``float64[M, 4]`` xyxy, absolute pixels.
        scores: ``float64[M]`` confidences.
        labels: ``int64[M]``, 0-based class indices.
    """

    image_id: int
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


def _to_numpy(value: object, where: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{where}: expected a tensor, array or list of numbers, got {type(value).__name__}") from exc
    if arr.dtype == object:
        raise TypeError(f"{where}: expected a tensor, array or list of numbers, got {type(value).__name__}")
    return arr


def _boxes(value: object, where: str) -> np.ndarray:
    arr = _to_numpy(value, where)
    if arr.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{where}: expected boxes of shape [N, 4] (xyxy), got shape {list(arr.shape)}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{where}: expected numeric boxes, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if bad.size:
        raise ValueError(f"{where}[{bad[0]}]: box is not finite: {arr[bad[0]].tolist()}")
    bad = np.flatnonzero((arr[:, 2] < arr[:, 0]) | (arr[:, 3] < arr[:, 1]))
    if bad.size:
        raise ValueError(
            f"{where}[{bad[0]}]: expected xyxy with x2 >= x1 and y2 >= y1, got {arr[bad[0]].tolist()}"
        )
    return arr


def _vector(value: object, n: int, where: str, kind: str) -> np.ndarray:
    arr = _to_numpy(value, where)
    if arr.size == 0 and n == 0:
        arr = arr.reshape(0)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{where}: expected shape [{n}] (one per box), got shape {list(arr.shape)}")
    if kind == "int":
        if not (np.issubdtype(arr.dtype, np.integer) or n == 0):
            raise TypeError(f"{where}: expected integer labels, got dtype {arr.dtype}")
        return arr.astype(np.int64)
    if kind == "bool":
        if not (arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer) or n == 0):
            raise TypeError(f"{where}: expected bool flags, got dtype {arr.dtype}")
        return arr.astype(bool)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer) or n == 0):
        raise TypeError(f"{where}: expected float values, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"{where}[{bad[0]}]: value is not finite: {arr[bad[0]]}")
    return arr


def _labels(value: object, n: int, num_classes: int, where: str) -> np.ndarray:
    labels = _vector(value, n, where, "int")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise ValueError(
            f"{where}[{bad[0]}]: label {labels[bad[0]]} out of range [0, {num_classes}) "
            "(labels are 0-based, background not counted)"
        )
    return labels


def _image_id(target: Mapping, where: str) -> int:
    if "image_id" not in target:
        raise ValueError(f"{where}: missing key 'image_id'")
    raw = target["image_id"]
    arr = _to_numpy(raw, f"{where}['image_id']")
    if arr.size != 1 or not (np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{where}['image_id']: expected one integer, got {raw!r}")
    return int(arr.reshape(()))


def _orig_size(value: object, where: str) -> tuple[int, int] | None:
    if value is None:
        return None
    arr = _to_numpy(value, where).reshape(-1)
    if arr.shape[0] != 2 or not np.issubdtype(arr.dtype, np.number) or (arr <= 0).any():
        raise ValueError(f"{where}: expected (H, W) positive sizes, got {value!r}")
    return int(arr[0]), int(arr[1])


def _require(d: Mapping, key: str, where: str) -> object:
    if key not in d:
        raise ValueError(f"{where}: missing key {key!r} (has {sorted(map(str, d))})")
    return d[key]


def parse_target(target: Mapping, num_classes: int, where: str) -> ImageGroundTruth:
    """Validate one target dict (see module docstring) into an :class:`ImageGroundTruth`."""
    if not isinstance(target, Mapping):
        raise TypeError(f"{where}: expected a dict, got {type(target).__name__}")
    image_id = _image_id(target, where)
    where = f"{where} (image_id={image_id})"
    boxes = _boxes(_require(target, "boxes", where), f"{where} target boxes")
    n = boxes.shape[0]
    labels = _labels(_require(target, "labels", where), n, num_classes, f"{where} target labels")
    flags = {k: np.zeros(n, dtype=bool) for k in ("iscrowd", "difficult")}
    for key in flags:
        if target.get(key) is not None:
            flags[key] = _vector(target[key], n, f"{where} target {key}", "bool")
    box_area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    area = box_area if target.get("area") is None else _vector(target["area"], n, f"{where} area", "float")
    orig_size = _orig_size(target.get("orig_size"), f"{where} orig_size")
    return ImageGroundTruth(image_id, boxes, labels, flags["iscrowd"], flags["difficult"], area, orig_size)


def parse_output(output: Mapping, image_id: int, num_classes: int, where: str) -> ImageDetections:
    """Validate one output dict (see module docstring) into an :class:`ImageDetections`."""
    where = f"{where} (image_id={image_id})"
    if not isinstance(output, Mapping):
        raise TypeError(f"{where}: expected an output dict, got {type(output).__name__}")
    boxes = _boxes(_require(output, "boxes", where), f"{where} output boxes")
    m = boxes.shape[0]
    scores = _vector(_require(output, "scores", where), m, f"{where} output scores", "float")
    labels = _labels(_require(output, "labels", where), m, num_classes, f"{where} output labels")
    return ImageDetections(image_id, boxes, scores, labels)


def check_class_names(class_names: Sequence[str]) -> list[str]:
    """Return ``class_names`` as a list after checking it is a non-empty list of unique strings."""
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise TypeError(f"class_names: expected a list of str, got {type(class_names).__name__}")
    names = list(class_names)
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"class_names: expected a non-empty list of str, got {names!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"class_names: names must be unique, got {names!r}")
    return names


def check_iou(value: float, name: str) -> float:
    """Return ``value`` as a float after checking ``0 < value < 1``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
        raise ValueError(f"{name}: expected an IoU threshold in (0, 1), got {value!r}")
    return float(value)


class ImageStore:
    """Validated ground truth and detections of the images seen so far, in arrival order.

    The common state of every evaluator: ``add`` checks one batch completely before storing any
    of it, so a bad batch leaves the store unchanged.
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.ground_truth: list[ImageGroundTruth] = []
        self.detections: list[ImageDetections] = []
        self._seen: set[int] = set()

    def __len__(self) -> int:
        return len(self.ground_truth)

    def clear(self) -> None:
        self.ground_truth.clear()
        self.detections.clear()
        self._seen.clear()

    def add(self, targets: Sequence[Mapping], outputs: Sequence[Mapping]) -> None:
        """Validate and store one batch; ``targets[i]`` and ``outputs[i]`` describe one image."""
        for name, value in (("targets", targets), ("outputs", outputs)):
            if isinstance(value, Mapping) or not isinstance(value, Sequence):
                raise TypeError(f"{name}: expected a list of dicts (one per image), got {type(value).__name__}")
        if len(targets) != len(outputs):
            raise ValueError(f"expected one output per target, got {len(targets)} targets and {len(outputs)} outputs")
        gts, dets, batch_ids = [], [], set()
        for i, (target, output) in enumerate(zip(targets, outputs)):
            gt = parse_target(target, self.num_classes, f"targets[{i}]")
            if gt.image_id in self._seen or gt.image_id in batch_ids:
                raise ValueError(f"targets[{i}]: image_id={gt.image_id} was already processed (ids must be unique)")
            batch_ids.add(gt.image_id)
            gts.append(gt)
            dets.append(parse_output(output, gt.image_id, self.num_classes, f"outputs[{i}]"))
        self.ground_truth.extend(gts)
        self.detections.extend(dets)
        self._seen.update(batch_ids)

    def require_images(self, who: str) -> None:
        """Raise ``ValueError`` when no image was processed yet."""
        if not self.ground_truth:
            raise ValueError(f"{who}.evaluate(): no images were processed; call process(targets, outputs) first")


def nan_to_none(value: float) -> float | None:
    """``None`` for NaN (JSON has no NaN), the value otherwise."""
    return None if isinstance(value, float) and math.isnan(value) else value


class StoredEvaluator:
    """Base of the evaluators: ``reset() / process(targets, outputs) / evaluate() -> dict``.

    Keeps the validated images in an :class:`ImageStore`; subclasses implement ``compute()``,
    returning a result object with ``to_dict()``.
    """

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = check_class_names(class_names)
        self._store = ImageStore(len(self.class_names))

    def reset(self) -> None:
        """Forget every processed image."""
        self._store.clear()

    def process(self, targets: Sequence[Mapping], outputs: Sequence[Mapping]) -> None:
        """Add one batch: ``targets[i]``/``outputs[i]`` are one image (see this module)."""
        self._store.add(targets, outputs)

    def compute(self):  # noqa: ANN201 - each subclass returns its own result type
        raise NotImplementedError

    def evaluate(self) -> dict:
        """``compute().to_dict()``."""
        return self.compute().to_dict()
