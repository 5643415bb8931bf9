"""Run a detector over a dataset split and collect ``(targets, outputs)`` for the evaluators."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader

from detect.data.collate import detection_collate
from detect.data.dataset import DetectionDataset

Target = dict[str, object]


def predict_dataset(model: nn.Module, dataset: DetectionDataset, batch_size: int = 8, device: str = "cpu",
                    num_workers: int = 0, progress: bool = True) -> tuple[list[Target], list[dict[str, torch.Tensor]]]:
    """Targets and detections for every image of ``dataset``, in dataset order.

    Outputs follow the Detector contract (xyxy boxes in original image pixels, 0-based labels)
    and are moved to the CPU. The model is put in eval mode. The loop is
    :func:`detect.engine.loop.predict_batches`, the one the training engine validates with.
    """
    from detect.engine.loop import predict_batches

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=detection_collate)
    targets, outputs, _ = predict_batches(model, loader, device, progress=progress)
    return targets, outputs
