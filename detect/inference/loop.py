"""The one predict loop: a detector over batches of images, its detections on the CPU, timed.

Every detector family goes through it (the Detector contract: ``model(images)`` in eval mode
returns one ``{"boxes", "scores", "labels"}`` per image, boxes xyxy in original image pixels);
evaluation, the trainer's validation and report, and the benchmark all call it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from classify.base.device import autocast, synchronize
from detect.data.collate import detection_collate

Batch = tuple[Sequence[Tensor], Sequence[Mapping[str, Any]]]


@torch.inference_mode()
def predict_batches(model: nn.Module, loader: Iterable[Batch], device: torch.device | str,
                    amp: torch.dtype | None = None,
                    progress: bool = True) -> tuple[list[dict[str, Any]], list[dict[str, Tensor]], dict[str, float]]:
    """Targets, CPU detections and timing of every image of ``loader`` (model in eval mode).

    ``loader`` yields ``(images, targets)``: ``images`` a list of ``Tensor[3, H, W]`` in [0, 1].
    The forward autocasts to ``amp`` (``None``: float32); detections come back in float32.

    Timing (detectron2 style): ``seconds_per_image`` of model calls, the first batch skipped as
    warm-up when there are more, the device synchronised around each call; ``images`` counted.
    """
    device = torch.device(device)
    model.eval()
    targets: list[dict[str, Any]] = []
    outputs: list[dict[str, Tensor]] = []
    seconds, timed = 0.0, 0
    for i, (images, batch_targets) in enumerate(tqdm(loader, desc="eval", unit="batch", disable=not progress,
                                                     leave=False)):
        images = [im.to(device, non_blocking=True) for im in images]
        batch_out, batch_seconds = timed_forward(model, images, device, amp)
        if i > 0 or len(loader) == 1:  # type: ignore[arg-type]
            seconds += batch_seconds
            timed += len(images)
        outputs += [{k: v.detach().float().cpu() if v.is_floating_point() else v.cpu() for k, v in o.items()}
                    for o in batch_out]
        targets += list(batch_targets)
    return targets, outputs, {"seconds_per_image": seconds / max(timed, 1), "images": float(len(targets))}


def timed_forward(model: nn.Module, images: list[Tensor], device: torch.device,
                  amp: torch.dtype | None = None) -> tuple[list[dict[str, Tensor]], float]:
    """``model(images)`` (Detector contract) autocast to ``amp``, and its seconds with the device
    synchronised before and after (CUDA runs asynchronously)."""
    synchronize(device)
    start = time.perf_counter()
    with autocast(device, amp):
        outputs = model(images)
    synchronize(device)
    return outputs, time.perf_counter() - start


def data_loader(data: DataLoader | Dataset, batch_size: int = 8, num_workers: int = 0) -> DataLoader:
    """``data`` itself if it is a loader, else an ordered loader over the dataset."""
    if isinstance(data, DataLoader):
        return data
    if batch_size <= 0:
        raise ValueError(f"batch size: expected a positive integer, got {batch_size}")
    return DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      collate_fn=detection_collate)
