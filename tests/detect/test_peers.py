"""Peer detectors behind the Detector contract; ultralytics post-processing parity."""

from __future__ import annotations

import pytest
import torch

from detect.models.peers.ultralytics import UltralyticsDetector
from detect.models.registry import get_detector, list_detectors

SMALL_PEERS = ["tv_fasterrcnn_mobilenet_v3_large_320_fpn", "yolov8n", "yolo11n"]


@pytest.mark.parametrize("name", SMALL_PEERS)
def test_peer_eval_output_follows_the_contract(name: str) -> None:
    torch.manual_seed(0)
    model = get_detector(name, num_classes=5, image_size=128).eval()
    images = [torch.rand(3, 90, 120), torch.rand(3, 128, 64)]
    with torch.no_grad():
        outputs = model(images)
    assert len(outputs) == 2
    for image, out in zip(images, outputs):
        h, w = image.shape[1:]
        n = len(out["boxes"])
        assert out["boxes"].shape == (n, 4) and out["scores"].shape == (n,) and out["labels"].dtype == torch.int64
        if n:
            assert out["labels"].min() >= 0 and out["labels"].max() < 5
            assert (out["boxes"][:, 2:] <= torch.tensor([w, h]) + 1e-4).all() and (out["boxes"] >= 0).all()
            assert torch.all(out["scores"][:-1] >= out["scores"][1:])


def test_registry_lists_peers_and_suggests_names() -> None:
    assert set(SMALL_PEERS) <= set(list_detectors())
    with pytest.raises(ValueError, match="did you mean yolov8n"):
        get_detector("yolov8n_")


def test_ultralytics_postprocess_matches_ultralytics_nms() -> None:
    from ultralytics.utils.nms import non_max_suppression

    torch.manual_seed(1)
    model = UltralyticsDetector.from_config("yolov8n.yaml", num_classes=4, imgsz=128, score_threshold=0.3,
                                            nms_threshold=0.5).eval()
    images = [torch.rand(3, 128, 128) for _ in range(2)]
    batch, params, _ = model.preprocess(images)
    assert params == [(1.0, 0, 0), (1.0, 0, 0)]
    with torch.no_grad():
        raw = model.net(batch)[0]
    # spread the scores so that many boxes pass the threshold and overlap
    raw[:, 4:] = torch.rand_like(raw[:, 4:])
    ours = model.postprocess(raw, params, [(128, 128)] * 2)
    theirs = non_max_suppression(raw.clone(), conf_thres=0.3, iou_thres=0.5, max_det=300)
    for mine, ref in zip(ours, theirs):
        assert len(mine["boxes"]) == len(ref) > 10
        order = torch.argsort(ref[:, 4], descending=True)
        ref_boxes = ref[order, :4].clamp(0, 128)
        torch.testing.assert_close(mine["boxes"], ref_boxes)
        torch.testing.assert_close(mine["scores"], ref[order, 4])
        assert torch.equal(mine["labels"], ref[order, 5].long())


def test_letterbox_maps_predictions_back_to_the_original_image() -> None:
    model = UltralyticsDetector.from_config("yolov8n.yaml", num_classes=1, imgsz=64).eval()
    image = torch.rand(3, 32, 64)  # scale 1, padded 16 px top and bottom
    _, params, _ = model.preprocess([image])
    assert params == [(1.0, 0, 16)]
    raw = torch.zeros(1, 5, 1)
    raw[0, :, 0] = torch.tensor([32.0, 32.0, 20.0, 10.0, 0.9])  # cx cy w h on the canvas, score
    out = model.postprocess(raw, params, [(32, 64)])[0]
    torch.testing.assert_close(out["boxes"], torch.tensor([[22.0, 11.0, 42.0, 21.0]]))


def test_ultralytics_wrapper_refuses_training_and_bad_sizes() -> None:
    with pytest.raises(ValueError, match="multiple of the model stride 32"):
        UltralyticsDetector.from_config("yolov8n.yaml", num_classes=2, imgsz=100)
    model = UltralyticsDetector.from_config("yolov8n.yaml", num_classes=2, imgsz=64)
    with pytest.raises(NotImplementedError, match="ultralytics' own trainer"):
        model.train()([torch.rand(3, 64, 64)], [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0)}])
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        UltralyticsDetector.from_weights("/nonexistent/yolov8n.pt")
