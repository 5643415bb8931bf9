"""torchvision's Faster R-CNN builders as peer detectors, registered for benchmarks and comparisons.

Built without any download (``weights=None``, ``weights_backbone=None``); a local checkpoint
file can be given as ``weights=PATH``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
import torchvision.models.detection as tvd
from torch import nn

from classify.base.checkpoint import load_state_strict, read_torch_file, state_dict_from
from detect.models.peers import COCO_NUM_CLASSES
from detect.models.postprocess import RoIHeadsPostprocess
from detect.models.registry import register_detector


def _torchvision(builder_name: str, num_classes: int = COCO_NUM_CLASSES, weights: str | Path | None = None,
                 image_size: int | None = None, **kwargs: object) -> nn.Module:
    """A torchvision detector; its class count includes background, ours does not.

    ``image_size`` fixes torchvision's internal resize (``min_size = max_size = image_size``).
    """
    builder = getattr(tvd, builder_name)
    if image_size is not None:
        kwargs.update(min_size=image_size, max_size=image_size)
    model = builder(weights=None, weights_backbone=None, num_classes=num_classes + 1, **kwargs)
    if weights is not None:
        state = state_dict_from(read_torch_file(weights), str(weights))
        load_state_strict(model, state, str(weights))
    return _ZeroBasedLabels(model)


class _ZeroBasedLabels(RoIHeadsPostprocess, nn.Module):
    """torchvision detectors count background as label 0; the project's labels are 0-based classes."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def _roi_heads(self) -> nn.Module:
        return self.model.roi_heads

    def forward(self, images: list[torch.Tensor], targets: list[dict] | None = None):
        if targets is not None:
            targets = [dict(t, labels=t["labels"] + 1) for t in targets]
        out = self.model(images, targets)
        if isinstance(out, dict):  # training: losses
            return out
        return [dict(o, labels=o["labels"] - 1) for o in out]


# registry name -> (torchvision builder, backbone shown in tables)
TORCHVISION_PEERS = {
    "tv_fasterrcnn_resnet50_fpn": ("fasterrcnn_resnet50_fpn", "resnet50-fpn"),
    "tv_fasterrcnn_resnet50_fpn_v2": ("fasterrcnn_resnet50_fpn_v2", "resnet50-fpn"),
    "tv_fasterrcnn_mobilenet_v3_large_fpn": ("fasterrcnn_mobilenet_v3_large_fpn", "mobilenet_v3_large-fpn"),
    "tv_fasterrcnn_mobilenet_v3_large_320_fpn": ("fasterrcnn_mobilenet_v3_large_320_fpn", "mobilenet_v3_large-fpn"),
}
for name, (builder_name, backbone) in TORCHVISION_PEERS.items():
    register_detector(name, family="faster_rcnn", backbone=backbone, peer=True)(partial(_torchvision, builder_name))
