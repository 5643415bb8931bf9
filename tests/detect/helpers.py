"""Small synthetic datasets for the data-format tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from detect.structures import DatasetSplit, ImageRecord, ObjectAnnotation

CLASS_NAMES = ["cat", "dog", "digit 7"]


def random_split(root: Path, num_images: int = 6, seed: int = 0, name: str = "train") -> DatasetSplit:
    """Random-size JPEG images under ``root/images/<name>`` with random float boxes, some with no objects."""
    rng = np.random.default_rng(seed)
    image_root = root / "images" / name
    image_root.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(num_images):
        width, height = int(rng.integers(40, 120)), int(rng.integers(40, 120))
        pixels = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
        file_name = f"{name}_{i:03d}.jpg"
        Image.fromarray(pixels).save(image_root / file_name, quality=90)
        objects = tuple(_random_object(rng, width, height) for _ in range(int(rng.integers(0, 5))))
        records.append(ImageRecord(i + 1, file_name, width, height, objects))
    return DatasetSplit(class_names=list(CLASS_NAMES), images=records, image_root=image_root, name=name)


def _random_object(rng: np.random.Generator, width: int, height: int) -> ObjectAnnotation:
    x1, y1 = rng.uniform(0, width - 5), rng.uniform(0, height - 5)
    x2, y2 = rng.uniform(x1 + 1, width), rng.uniform(y1 + 1, height)
    return ObjectAnnotation(box=(x1, y1, x2, y2), label=int(rng.integers(0, len(CLASS_NAMES))))


def boxes_and_labels(split: DatasetSplit) -> dict[str, list[tuple[tuple[float, ...], int]]]:
    """Per image file stem: the (box, label) pairs, for comparing splits across formats."""
    return {Path(r.file_name).stem: [(o.box, o.label) for o in r.objects] for r in split.images}
