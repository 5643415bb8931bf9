"""In-memory annotations shared by every dataset format, the scene builder and the Dataset.

Box convention (docs/design.md, "Contracts"): ``xyxy`` in absolute, continuous pixel coordinates of
the image, ``0 <= x1 < x2 <= width``. A box that covers pixel columns ``a..b`` inclusive spans
``x1 = a, x2 = b + 1``. Formats convert to this only at their edges:

* COCO ``[x, y, w, h]``         -> ``(x, y, x + w, y + h)``
* Pascal VOC 1-based inclusive  -> ``(xmin - 1, ymin - 1, xmax, ymax)``
* YOLO normalised ``cx cy w h`` -> scaled by the image size, then to corners
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class ObjectAnnotation:
    """One annotated object.

    Attributes:
        box: ``(x1, y1, x2, y2)`` absolute pixels, continuous coordinates.
        label: 0-based index into the split's ``class_names`` (no background class).
        difficult: VOC ``difficult`` flag; ignored by the VOC metric.
        truncated: VOC ``truncated`` flag; informational.
        iscrowd: COCO ``iscrowd`` flag; matched but never counted as a miss.
        annotated_area: the area the annotation file gives (COCO ``area``, pixels²: the
            segmentation's area in real COCO, which sets the small/medium/large range of the
            object), or ``None`` when the file gives none.
    """

    box: Box
    label: int
    difficult: bool = False
    truncated: bool = False
    iscrowd: bool = False
    annotated_area: float | None = None

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def box_area(self) -> float:
        return self.width * self.height

    @property
    def area(self) -> float:
        """``annotated_area`` where the file gives one, else the box's area (pixels²)."""
        return self.box_area if self.annotated_area is None else self.annotated_area


@dataclass(frozen=True)
class ImageRecord:
    """One image and its objects.

    Attributes:
        image_id: unique positive integer within the split.
        file_name: path of the image relative to the split's ``image_root`` (POSIX separators).
        width, height: image size in pixels.
        objects: annotations in file order; the order is the "object index" used in errors.
    """

    image_id: int
    file_name: str
    width: int
    height: int
    objects: tuple[ObjectAnnotation, ...] = ()


@dataclass
class DatasetSplit:
    """One split of a detection dataset in any format, held in memory.

    Attributes:
        class_names: names of the classes; ``ObjectAnnotation.label`` indexes this list.
        images: the split's images, in a stable order.
        image_root: directory that ``ImageRecord.file_name`` is relative to.
        name: split name (``train``, ``val``, ``test``...), informational.
        category_ids: the source's category id of each class (COCO ids need not be 1..K);
            ``None`` means ``label + 1``.
    """

    class_names: list[str]
    images: list[ImageRecord]
    image_root: Path
    name: str = "train"
    category_ids: list[int] | None = None

    def __len__(self) -> int:
        return len(self.images)

    def image_path(self, record: ImageRecord) -> Path:
        """Absolute path of ``record``'s image file."""
        return self.image_root / record.file_name

    def num_objects(self) -> int:
        return sum(len(r.objects) for r in self.images)

    def category_id(self, label: int) -> int:
        """The category id that ``label`` is written as (COCO ``category_id``)."""
        return self.category_ids[label] if self.category_ids else label + 1

    def with_images(self, images: list[ImageRecord]) -> DatasetSplit:
        """A copy of this split holding ``images`` instead."""
        return replace(self, images=list(images))
