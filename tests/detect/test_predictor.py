"""The Predictor: every input kind, settings, class filter, timing, drawing, tracking, writers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from media_samples import ultralytics_asset
from PIL import Image
from torch import nn

from classify.base.checkpoint import save_checkpoint
from classify.base.images import ImageDecodeError
from detect import Detections, Predictor
from detect.inference.draw import draw_detections, label_text
from detect.inference.tracking import Tracker, TrackerConfig
from detect.inference.writers import CocoResultsWriter, JsonLinesWriter, MotWriter, YoloTxtWriter
from detect.models.registry import get_detector

CLASSES = ["cat", "dog", "bird"]


class FixedDetector(nn.Module):
    """Finds, in every image, one box per class at known places scaled to the image (scores 0.9, 0.6, 0.3)."""

    def __init__(self) -> None:
        super().__init__()
        self.score_threshold, self.nms_threshold, self.max_detections = 0.05, 0.5, 100
        self.calls: list[int] = []

    def configure_postprocess(self, score_threshold=None, nms_threshold=None, max_detections=None) -> None:
        self.score_threshold = self.score_threshold if score_threshold is None else score_threshold
        self.nms_threshold = self.nms_threshold if nms_threshold is None else nms_threshold
        self.max_detections = self.max_detections if max_detections is None else max_detections

    def postprocess_settings(self):
        from detect.models.postprocess import PostprocessSettings

        return PostprocessSettings(self.score_threshold, self.nms_threshold, self.max_detections)

    def forward(self, images: list[torch.Tensor], targets=None) -> list[dict[str, torch.Tensor]]:
        self.calls.append(len(images))
        outputs = []
        for image in images:
            h, w = image.shape[-2:]
            boxes = torch.tensor([[0.1, 0.1, 0.4, 0.5], [0.5, 0.2, 0.9, 0.6], [0.2, 0.6, 0.5, 0.9]]) * torch.tensor([w, h, w, h])
            scores, labels = torch.tensor([0.9, 0.6, 0.3]), torch.tensor([0, 1, 2])
            keep = (scores > self.score_threshold).nonzero().flatten()[: self.max_detections]
            outputs.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
        return outputs


def test_every_input_kind_gives_one_detections_in_original_pixels(tmp_path: Path) -> None:
    rgb = np.zeros((40, 60, 3), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    predictor = Predictor(FixedDetector(), class_names=CLASSES, conf=0.05)
    inputs = [tmp_path / "a.png", str(tmp_path / "a.png"), Image.fromarray(rgb), rgb, rgb[:, :, 0],
              torch.zeros(3, 40, 60)]
    results = predictor(inputs)
    assert len(results) == len(inputs)
    for d in results:
        assert isinstance(d, Detections) and d.image_size == (60, 40) and len(d) == 3
        np.testing.assert_allclose(d.boxes[0], [6, 4, 24, 20], rtol=1e-6)
        assert d.names == CLASSES and d.labels.dtype == np.int64
        np.testing.assert_allclose(d.xywh[0], [6, 4, 18, 16], rtol=1e-6)
        np.testing.assert_allclose(d.xyxyn[0], [0.1, 0.1, 0.4, 0.5], rtol=1e-6)
        np.testing.assert_allclose(d.xywhn[0], [0.25, 0.3, 0.3, 0.4], rtol=1e-6)
        assert d.timing.model > 0 and d.timing.total >= d.timing.model
    assert results[0].source == str(tmp_path / "a.png") and results[3].source == "<array 3>"
    [single] = predictor(rgb)
    assert len(single) == 3


def test_settings_reach_the_model_and_classes_filter(tmp_path: Path) -> None:
    model = FixedDetector()
    predictor = Predictor(model, class_names=CLASSES, conf=0.5, iou=0.3, max_det=5, classes=["dog", 0])
    assert (model.score_threshold, model.nms_threshold, model.max_detections) == (0.5, 0.3, 5)
    [d] = predictor(np.zeros((10, 10, 3), np.uint8))
    assert d.names == ["cat", "dog"]
    with pytest.raises(ValueError, match=r"class 'cow' is not one the model predicts \(0=cat, 1=dog, 2=bird\)"):
        Predictor(FixedDetector(), class_names=CLASSES, classes=["cow"])
    with pytest.raises(ValueError, match="class index 3 is out of range: the model predicts 3 classes"):
        Predictor(FixedDetector(), class_names=CLASSES, classes=[3])
    with pytest.raises(ValueError, match=r"score threshold: expected a number in \[0, 1\], got 2"):
        Predictor(FixedDetector(), class_names=CLASSES, conf=2)


def test_stream_batches_and_skips_unreadable_inputs(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(good)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    model = FixedDetector()
    predictor = Predictor(model, class_names=CLASSES, batch_size=2)
    errors: list[tuple[str, Exception]] = []
    results = list(predictor.stream([good, tmp_path / "bad.png", good, good, tmp_path / "absent.png"],
                                    on_error=lambda source, e: errors.append((source, e))))
    assert len(results) == 3 and model.calls == [2, 1]
    assert [Path(s).name for s, _ in errors] == ["bad.png", "absent.png"]
    assert isinstance(errors[0][1], ImageDecodeError) and isinstance(errors[1][1], FileNotFoundError)
    with pytest.raises(ImageDecodeError, match="bad.png"):
        predictor([tmp_path / "bad.png"])


def test_bad_inputs_and_models_say_what_was_expected(tmp_path: Path) -> None:
    predictor = Predictor(FixedDetector(), class_names=CLASSES)
    with pytest.raises(ValueError, match=r"expected an uint8 RGB array \[H, W, 3\].*float32 \[4, 4\]"):
        predictor(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="the model has no class names"):
        Predictor(FixedDetector())
    with pytest.raises(FileNotFoundError, match="model file not found: nowhere/best.pt"):
        Predictor("nowhere/best.pt")
    with pytest.raises(ValueError, match="unknown detector 'yolov8x'"):
        Predictor("yolov8x")
    stranger = tmp_path / "weights.pt"
    torch.save({"a": torch.zeros(1)}, stranger)
    with pytest.raises(ValueError, match=str(stranger)):
        Predictor(stranger)
    no_names = save_checkpoint(tmp_path / "no_names.pt", {}, config={"detector": "yolov8n", "image_size": 64})
    with pytest.raises(ValueError, match="not a detector checkpoint"):
        Predictor(no_names)
    with pytest.raises(ValueError, match="backend onnxruntime cannot run .* it is a torch checkpoint"):
        Predictor(no_names, backend="onnxruntime")


def test_a_checkpoint_runs_like_the_model_it_was_saved_from(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = get_detector("faster_rcnn", backbone="resnet18", fpn=False, num_classes=3, image_size=96).eval()
    path = save_checkpoint(tmp_path / "best.pt", model.state_dict(), class_names=CLASSES,
                           config={"detector": "faster_rcnn", "image_size": 96,
                                   "detector_kwargs": {"backbone": "resnet18", "fpn": False}})
    images = [torch.rand(3, 80, 100), torch.rand(3, 96, 64)]
    predictor = Predictor(path, conf=0.0, batch_size=2)
    assert predictor.class_names == CLASSES and predictor.backend == "torch"
    model.roi_heads.score_thresh = 0.0
    with torch.no_grad():
        expected = model(images)
    for d, e in zip(predictor(images), expected):
        np.testing.assert_allclose(d.boxes, e["boxes"].numpy(), rtol=1e-5, atol=1e-4)
        np.testing.assert_array_equal(d.labels, e["labels"].numpy())


def test_real_photos_through_a_registry_model() -> None:
    predictor = Predictor("yolov8n", image_size=128, conf=0.0, max_det=10, batch_size=2)
    results = predictor([ultralytics_asset("bus.jpg"), ultralytics_asset("zidane.jpg")])
    assert [r.image_size for r in results] == [(810, 1080), (1280, 720)]
    assert all(len(r) <= 10 for r in results)


def test_drawing_marks_boxes_in_class_colours_and_track_ids() -> None:
    image = np.full((120, 160, 3), 255, np.uint8)
    d = Detections([[10, 10, 60, 60], [80, 20, 150, 100]], [0.9, 0.5], [0, 2], CLASSES, (160, 120), "x")
    drawn = draw_detections(image, d)
    assert drawn.shape == image.shape and not np.array_equal(drawn, image) and (image == 255).all()
    assert tuple(drawn[35, 10]) == (163, 81, 251) and tuple(drawn[60, 80]) == (255, 161, 160)  # supervision's class 0 and 2
    assert label_text(d) == ["cat 0.90", "bird 0.50"]
    d.track_ids = np.array([7, 3])
    assert label_text(d, show_scores=False) == ["#7 cat", "#3 bird"]
    assert np.array_equal(draw_detections(image, d.select(np.zeros(2, bool))), image)


def _moving_boxes(frame: int) -> Detections:
    """Two objects moving towards each other, swapping sides at frame 20."""
    a = [10 + 4 * frame, 40, 40 + 4 * frame, 70]
    b = [150 - 4 * frame, 40, 180 - 4 * frame, 70]
    return Detections([a, b], [0.9, 0.8], [0, 1], CLASSES, (200, 100), "clip", frame, frame / 25)


def test_tracker_keeps_ids_on_a_hand_made_two_object_clip() -> None:
    tracker = Tracker(TrackerConfig(min_frames=1), frame_rate=25)
    by_label: dict[int, set[int]] = {0: set(), 1: set()}
    for frame in range(40):
        tracked = tracker.update(_moving_boxes(frame))
        if frame >= 1:
            assert len(tracked) == 2
        for label, track_id in zip(tracked.labels, tracked.track_ids):
            by_label[int(label)].add(int(track_id))
    assert all(len(ids) == 1 for ids in by_label.values()) and by_label[0] != by_label[1]


def test_writers_produce_the_documented_formats(tmp_path: Path) -> None:
    d = Detections([[10, 20, 50, 60]], [0.75], [1], CLASSES, (100, 200), str(tmp_path / "pic.jpg"))
    jsonl = JsonLinesWriter(tmp_path / "p.jsonl")
    jsonl.write(d)
    jsonl.close()
    record = json.loads((tmp_path / "p.jsonl").read_text())
    assert record["detections"] == [{"box": [10.0, 20.0, 50.0, 60.0], "score": 0.75, "label": 1, "name": "dog"}]
    assert (record["width"], record["height"]) == (100, 200) and "frame" not in record
    coco = CocoResultsWriter(tmp_path / "results.json")
    coco.write(d)
    coco.close()
    assert json.loads((tmp_path / "results.json").read_text()) == [
        {"image_id": "pic", "category_id": 2, "bbox": [10.0, 20.0, 40.0, 40.0], "score": 0.75}]
    with pytest.raises(ValueError, match="have the same file stem 'pic'"):
        coco.write(Detections([], [], [], CLASSES, (1, 1), str(tmp_path / "other" / "pic.png")))
    YoloTxtWriter(tmp_path / "labels").write(d)
    assert (tmp_path / "labels" / "pic.txt").read_text() == "1 0.3 0.2 0.4 0.2 0.75\n"
    mot = MotWriter(tmp_path / "tracks.txt")
    mot.write(Detections([[10, 20, 50, 60]], [0.75], [1], CLASSES, (100, 200), "v.mp4", 4, 0.16, [3]))
    mot.close()
    assert (tmp_path / "tracks.txt").read_text() == "5,3,10.00,20.00,40.00,40.00,0.75000,-1,-1,-1\n"
