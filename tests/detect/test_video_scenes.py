"""Digit-scenes videos: reproducible frames and ground truth, boxes and visibility exact from the
drawn pixels, tracks that enter, leave, cross and occlude, decodable videos, ``detect data video``."""

from __future__ import annotations

import configparser
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from classify.data.digits import DigitBank, load_digit_sources
from detect.cli import main
from detect.data.video_config import CODECS, PRESETS, VideoConfig, video_config
from detect.data.video_scenes import VideoFrame, VideoRenderer, gt_row, video_bank, write_video

TINY = PRESETS["tiny"]
#: no texture, noise, strokes or pan: every changed pixel is a digit's
PLAIN = {"background_strength": 0.0, "noise_std": 0.0, "min_distractors": 0, "max_distractors": 0, "pan_speed": 0.0}


@pytest.fixture(scope="module")
def bank() -> DigitBank:
    return video_bank(TINY, load_digit_sources())


def _frames(config: VideoConfig, bank: DigitBank) -> list[VideoFrame]:
    return list(VideoRenderer(config, bank))


def _gt(frames: list[VideoFrame]) -> list[str]:
    return [gt_row(f.index, o) for f in frames for o in f.objects]


# --------------------------------------------------------------------------- reproducibility


def test_same_seed_same_video_other_seed_other_video(bank: DigitBank) -> None:
    a = _frames(TINY, bank)
    b = _frames(TINY, bank)
    assert len(a) == TINY.frames and [f.index for f in a] == list(range(1, TINY.frames + 1))
    assert _gt(a) == _gt(b)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
    c = _frames(video_config("tiny", seed=TINY.seed + 1), bank)
    assert _gt(c) != _gt(a)
    assert not np.array_equal(c[0].image, a[0].image)
    # a shorter clip is the start of a longer one
    short = _frames(video_config("tiny", frames=15), bank)
    assert _gt(short) == [row for row in _gt(a) if int(row.split(",")[0]) <= 15]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(short, a))


# --------------------------------------------------------------------------- exact ground truth


def test_boxes_and_visibility_are_exact_from_the_drawn_pixels(bank: DigitBank) -> None:
    config = video_config("tiny", **PLAIN)
    w, h = config.width, config.height
    renderer = VideoRenderer(config, bank)
    for frame in renderer:
        assert frame.image.shape == (h, w, 3) and frame.image.dtype == np.uint8
        masks = np.stack([o.mask(w, h) for o in frame.objects]) if frame.objects else np.zeros((0, h, w))
        covering = np.ones((h, w), np.float64)
        visible = np.zeros(len(frame.objects))
        for k in range(len(frame.objects) - 1, -1, -1):  # top first
            visible[k] = float((masks[k] * covering).sum())
            covering *= 1.0 - masks[k]
        for k, obj in enumerate(frame.objects):
            x1, y1, x2, y2 = obj.box
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
            ys, xs = np.nonzero(masks[k])  # the digit's ink inside the frame, occluded or not
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x1, y1, x2, y2)
            assert obj.visibility == pytest.approx(visible[k] / float(obj.alpha.sum()), abs=1e-5)
        # what was drawn: pixels differ from the background exactly where some digit has ink
        changed = np.abs(frame.image.astype(np.float64) - renderer.background(frame.index)).max(axis=2) > 0.5
        ink = masks.sum(axis=0) > 0
        assert not (changed & ~ink).any(), f"frame {frame.index}: pixels drawn outside every digit's ink"
        in_boxes = np.zeros((h, w), bool)
        for o in frame.objects:
            x1, y1, x2, y2 = (int(v) for v in o.box)
            in_boxes[y1:y2, x1:x2] = True
            if o.visibility > 0.05:
                assert changed[y1:y2, x1:x2].any(), f"frame {frame.index}: track {o.track_id} left no pixel"
        assert not (changed & ~in_boxes).any()


def test_tracks_enter_leave_cross_and_occlude(bank: DigitBank) -> None:
    renderer = VideoRenderer(TINY, bank)
    frames = list(renderer)
    first, last, labels = {}, {}, {}
    for f in frames:
        ids = [o.track_id for o in f.objects]
        assert len(ids) == len(set(ids))
        for o in f.objects:
            first.setdefault(o.track_id, f.index)
            last[o.track_id] = f.index
            assert labels.setdefault(o.track_id, o.label) == o.label  # a track keeps its digit
    assert sorted(first) == list(range(1, len(first) + 1))
    assert sorted(first, key=lambda t: (first[t], t)) == sorted(first)  # ids in order of appearance
    assert any(f > 1 for f in first.values()), "no digit entered during the clip"
    assert any(t < TINY.frames for t in last.values()), "no digit left during the clip"
    assert any(first[t] > 1 and last[t] < TINY.frames for t in first), "no digit both entered and left"
    assert renderer.crossings > 0 and renderer.occlusions > 0
    covered = [o for f in frames for o in f.objects if o.covered > 0]
    assert covered and all(o.visibility < 1.0 for o in covered)
    cut = [o for f in frames for o in f.objects if o.x0 < 0 or o.y0 < 0]
    assert cut and min(o.visibility for o in cut) < 0.5  # cut off by a border


def test_config_checks_and_presets() -> None:
    with pytest.raises(ValueError, match="max_digit_height=60 does not fit a 100x100 frame"):
        VideoConfig(width=100, height=100, max_digit_height=60)
    with pytest.raises(ValueError, match="min_speed=5.0 is greater than VideoConfig.max_speed=4.0"):
        VideoConfig(min_speed=5.0)
    with pytest.raises(ValueError, match="did you mean 'tiny'"):
        video_config("tiyn")
    with pytest.raises(ValueError, match="did you mean 'objects'"):
        video_config("tiny", objcts=3)
    assert video_config("small").width == 320 and video_config().width == 640


# --------------------------------------------------------------------------- files


def _decode(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


@pytest.mark.parametrize("codec", list(CODECS))
def test_video_decodes_with_the_right_frames_in_every_codec(tmp_path: Path, codec: str, bank: DigitBank) -> None:
    config = video_config("tiny", frames=8)
    summary = write_video(config, tmp_path, codec=codec, progress=False, bank=bank)
    assert summary.video == tmp_path / ("video" + CODECS[codec][0]) and summary.video.is_file()
    decoded = _decode(summary.video)
    assert len(decoded) == config.frames
    assert decoded[0].shape == (config.height, config.width, 3)
    rendered = [cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR) for f in VideoRenderer(config, bank)]
    for got, want in zip(decoded, rendered):  # lossy, but the same picture in the same channel order
        assert np.abs(got.astype(np.float64) - want).mean() < 12


def test_sequence_folder_layout_reuse_and_images(tmp_path: Path, bank: DigitBank) -> None:
    config = video_config("tiny", frames=12)
    summary = write_video(config, tmp_path, progress=False, bank=bank)
    assert not summary.reused and summary.frames_per_second > 0
    lines = (tmp_path / "gt" / "gt.txt").read_text().splitlines()
    assert lines == _gt(_frames(config, bank))
    for line in lines:
        frame, track, _, _, width, height, conf, cls, vis = line.split(",")
        assert 1 <= int(frame) <= 12 and int(track) >= 1 and conf == "1" and 1 <= int(cls) <= 10
        assert float(width) > 0 and float(height) > 0 and 0 <= float(vis) <= 1
    ini = configparser.ConfigParser()
    ini.optionxform = str
    ini.read(tmp_path / "seqinfo.ini")
    assert dict(ini["Sequence"]) == {"name": "digit-scenes", "imDir": "img1", "frameRate": "30", "seqLength": "12",
                                     "imWidth": "160", "imHeight": "120", "imExt": ".jpg"}
    assert (tmp_path / "labels.txt").read_text().split() == [str(d) for d in range(10)]
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["frames"] == 12 and stats["rows"] == len(lines)
    assert stats["tracks"] == len({line.split(",")[1] for line in lines})
    assert {"crossings", "occlusions", "visibility", "tracks_entering", "tracks_leaving"} <= set(stats)
    again = write_video(config, tmp_path, progress=False, bank=bank)
    assert again.reused and again.stats == stats
    with_images = write_video(config, tmp_path, images=True, progress=False, bank=bank)
    assert not with_images.reused and len(list((tmp_path / "img1").glob("*.jpg"))) == 12
    first = cv2.imread(str(tmp_path / "img1" / "000001.jpg"))
    assert first.shape == (120, 160, 3)
    write_video(config, tmp_path, codec="mjpg", progress=False, bank=bank)  # another codec replaces the files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt", "labels.txt", "seqinfo.ini", "stats.json",
                                                           "video.avi", "video_config.json"]


# --------------------------------------------------------------------------- the command line


def test_data_video_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "video"
    assert main(["data", "video", "--preset", "tiny", "--frames", "10", "--objects", "3", "--seed", "4",
                 "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert f"video:        {out / 'video.mp4'}" in text and str(out / "gt" / "gt.txt") in text
    assert json.loads((out / "video_config.json").read_text())["objects"] == 3
    assert len(_decode(out / "video.mp4")) == 10
    assert main(["data", "video", "--preset", "tiny", "--frames", "10", "--objects", "3", "--seed", "4",
                 "--out", str(out), "--quiet"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["data", "video", "--preset", "tiny", "--out", str(out), "--max-digit-height", "70"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "max_digit_height=70 does not fit a 160x120 frame" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
