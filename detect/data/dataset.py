"""A torch ``Dataset`` over any dataset format, yielding images and detection targets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import Dataset

from detect.data.formats import load_split
from detect.data.image_io import read_image
from detect.structures import DatasetSplit, ImageRecord

Target = dict[str, object]
Transform = Callable[[torch.Tensor, Target], tuple[torch.Tensor, Target]]


def target_from_record(record: ImageRecord) -> Target:
    """The detection target of one image.

    Returns a dict with ``boxes`` FloatTensor[N,4] (xyxy, absolute pixels), ``labels``
    int64[N] (0-based), ``difficult``/``iscrowd`` bool[N], ``area`` float64[N] (pixels² of the
    original image: the file's area, e.g. COCO's segmentation area, else the box's; it sets the
    COCO small/medium/large ranges and is not rescaled by transforms), ``image_id`` int and
    ``orig_size`` ``(H, W)``.
    """
    objs = record.objects
    return {
        "boxes": torch.tensor([o.box for o in objs], dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor([o.label for o in objs], dtype=torch.int64),
        "difficult": torch.tensor([o.difficult for o in objs], dtype=torch.bool),
        "iscrowd": torch.tensor([o.iscrowd for o in objs], dtype=torch.bool),
        "area": torch.tensor([o.area for o in objs], dtype=torch.float64),
        "image_id": record.image_id,
        "orig_size": (record.height, record.width),
    }


class DetectionDataset(Dataset):
    """Images in ``[0, 1]`` as ``FloatTensor[3,H,W]`` with their targets (see ``target_from_record``).

    Args:
        split: a split read by :func:`detect.data.formats.load_split`, or a dataset path.
        transforms: optional paired transform ``(image, target) -> (image, target)``.
        split_name: the split to load when ``split`` is a path.
    """

    def __init__(
        self, split: DatasetSplit | str | Path, transforms: Transform | None = None, split_name: str | None = None
    ) -> None:
        self.split = split if isinstance(split, DatasetSplit) else load_split(Path(split), split_name)
        self.transforms = transforms

    @property
    def class_names(self) -> list[str]:
        return self.split.class_names

    def __len__(self) -> int:
        return len(self.split.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        record = self.split.images[index]
        path = self.split.image_path(record)
        image = read_image(path)
        if tuple(image.shape[1:]) != (record.height, record.width):
            raise ValueError(
                f"{path}: annotated size {record.width}x{record.height} but the image is "
                f"{image.shape[2]}x{image.shape[1]} (image_id {record.image_id})"
            )
        image = image.float().div_(255)
        target = target_from_record(record)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target
