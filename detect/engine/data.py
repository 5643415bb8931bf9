"""The data of a training run: its splits, checked once up front, and their loaders.

Training images go through the augmentation of :func:`detect.data.transforms.build_transforms`
under per-sample seeds (:class:`detect.data.sampler.SeededDataset`) in seeded batches
(:class:`detect.data.sampler.GroupedBatchSampler`); with ``mosaic > 0`` a share of them are mosaics
(:class:`detect.data.mosaic.MosaicDataset`). Validation and test images are not transformed:
the Detector contract has the model take original images and answer in their pixels.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from detect.data.collate import detection_collate
from detect.data.dataset import DetectionDataset
from detect.data.formats import available_splits, detect_format, load_split
from detect.data.mosaic import MosaicDataset
from detect.data.sampler import GroupedBatchSampler, SeededDataset, aspect_ratio_groups
from detect.data.transforms import Compose, Letterbox, build_transforms
from detect.data.validate import box_problems, duplicate_id_problems
from detect.engine.config import DetectTrainConfig
from detect.structures import DatasetSplit

ROLES = ("train", "val", "test")


def check_targets(split: DatasetSplit) -> None:
    """Check every box of ``split`` (no image is decoded); images without objects are fine.

    Raises:
        ValueError: listing every box of non-positive size (``x2 <= x1`` or ``y2 <= y1``), outside
            its image (beyond half a pixel), with a label outside the classes, and every
            duplicated image id; each line names the image file, its ``image_id`` and the
            0-based object index.
    """
    lines = [f"{p.file}: {p.message}" for p in duplicate_id_problems(split)]
    for record in split.images:
        for problem in box_problems(split, record):
            lines.append(f"{problem.file} (image_id {record.image_id}) object {problem.index}: {problem.message}")
    if lines:
        listing = "\n  ".join(lines)
        raise ValueError(f"{len(lines)} bad annotation(s) in split '{split.name}' ({len(split.images)} images); "
                         f"fix or remove them before training:\n  {listing}")


def load_training_splits(config: DetectTrainConfig) -> dict[str, DatasetSplit]:
    """The train, val and test splits named by ``config`` (val/test when not null), checked.

    Raises:
        FileNotFoundError: no dataset at ``config.data``.
        ValueError: a split the dataset lacks (naming the ones it has), an empty training split,
            class names that differ between splits, or bad boxes (:func:`check_targets`).
    """
    path = Path(config.data)
    fmt = config.format or detect_format(path)
    have = available_splits(path, fmt)
    names = {"train": config.train_split, "val": config.val_split, "test": config.test_split}
    splits = {}
    for role, name in names.items():
        if name is None:
            continue
        if name not in have:
            hint = "" if role == "train" else f", or {role}_split: null to skip it"
            raise ValueError(f"{path}: no {role} split {name!r} in this {fmt} dataset; it has {have} "
                             f"(set {role}_split to one of them{hint})")
        splits[role] = load_split(path, name, fmt)
    for role, split in splits.items():
        if not split.images:
            raise ValueError(f"{path}: the {role} split {names[role]!r} has no images"
                             + ("" if role == "train" else f" (set {role}_split: null to skip it)"))
    for role, split in splits.items():
        if split.class_names != splits["train"].class_names:
            raise ValueError(f"{path}: the {role} split's classes {split.class_names} differ from the "
                             f"training split's {splits['train'].class_names}")
        check_targets(split)
    return splits


def build_train_loader(split: DatasetSplit, config: DetectTrainConfig,
                       device: torch.device) -> tuple[DataLoader, GroupedBatchSampler, SeededDataset]:
    """The training loader, its batch sampler and its seeded dataset (both need ``set_epoch``)."""
    transforms = build_transforms(True, config.image_size, letterbox=config.letterbox, hflip=config.hflip,
                                  scale_jitter=config.scale_jitter, color_jitter=config.color_jitter,
                                  translate=config.translate)
    dataset = SeededDataset(_augmented(split, transforms, config), seed=config.seed)
    if config.letterbox:
        groups = [0] * len(split.images)
    else:
        groups = aspect_ratio_groups([r.width / r.height for r in split.images], config.aspect_ratio_group_factor)
    sampler = GroupedBatchSampler(groups, config.batch_size, seed=config.seed)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=config.num_workers,
                        collate_fn=detection_collate, pin_memory=device.type == "cuda",
                        generator=torch.Generator().manual_seed(config.seed))
    return loader, sampler, dataset


def _augmented(split: DatasetSplit, transforms: Compose, config: DetectTrainConfig) -> Dataset:
    """The training images through ``transforms``; with ``mosaic > 0`` a share of them mosaics,
    followed by ``transforms`` less its letterbox (flip, colour jitter)."""
    if config.mosaic == 0:
        return DetectionDataset(split, transforms)
    after = Compose([t for t in transforms.transforms if not isinstance(t, Letterbox)])
    assert len(after.transforms) == len(transforms.transforms) - 1, "mosaic needs the letterbox pipeline"
    return MosaicDataset(DetectionDataset(split), config.image_size, config.mosaic, transforms, after,
                         scale_range=config.scale_jitter, translate=config.translate, mixup=config.mixup)


def build_eval_loader(split: DatasetSplit, config: DetectTrainConfig, device: torch.device) -> DataLoader:
    """Untransformed images of ``split`` in order, ``eval_batch_size`` at a time."""
    return DataLoader(DetectionDataset(split), batch_size=config.eval_batch_size, shuffle=False,
                      num_workers=config.num_workers, collate_fn=detection_collate,
                      pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(config.seed))
