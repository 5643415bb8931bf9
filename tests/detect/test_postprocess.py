"""The Detector contract's post-processing settings, for every registered detector."""

from __future__ import annotations

import pytest
import torch

from detect.models.postprocess import PostprocessSettings, configure_postprocess
from detect.models.registry import get_detector, list_detectors

#: the cheapest build of each registered name (backbone choice for the any-backbone builder)
BUILD_KWARGS = {"faster_rcnn": {"backbone": "resnet18", "fpn": False}}


@pytest.mark.parametrize("name", list_detectors())
def test_every_detector_takes_postprocess_settings(name: str) -> None:
    torch.manual_seed(0)
    model = get_detector(name, num_classes=3, image_size=96, **BUILD_KWARGS.get(name, {})).eval()
    before = configure_postprocess(model)
    assert isinstance(before, PostprocessSettings)
    after = configure_postprocess(model, score_threshold=0.3, nms_threshold=0.4, max_detections=2)
    assert after == PostprocessSettings(0.3, 0.4, 2)
    with torch.no_grad():
        out = model([torch.rand(3, 96, 96)])[0]
    assert len(out["boxes"]) <= 2 and bool((out["scores"] > 0.3).all())
    assert configure_postprocess(model, max_detections=7) == PostprocessSettings(0.3, 0.4, 7)


def test_out_of_range_settings_are_refused() -> None:
    model = get_detector("yolov8n", num_classes=2, image_size=64)
    with pytest.raises(ValueError, match=r"score threshold: expected a number in \[0, 1\], got 1.5"):
        configure_postprocess(model, score_threshold=1.5)
    with pytest.raises(ValueError, match="max detections: expected a positive integer, got 0"):
        configure_postprocess(model, max_detections=0)
    with pytest.raises(ValueError, match="does not follow the Detector contract"):
        configure_postprocess(torch.nn.Linear(2, 2))
