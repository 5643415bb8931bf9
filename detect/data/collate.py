"""Batching for detection ``DataLoader``\\ s."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

Sample = tuple[Tensor, dict[str, Any]]


def detection_collate(batch: Sequence[Sample]) -> tuple[list[Tensor], list[dict[str, Any]]]:
    """``[(image, target), ...]`` -> ``([image, ...], [target, ...])``.

    Images stay a list rather than a stacked tensor because their sizes may differ; this is the
    input torchvision detection models expect. Targets are passed through unchanged.
    """
    images = [image for image, _ in batch]
    targets = [target for _, target in batch]
    return images, targets
