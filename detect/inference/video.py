"""Reading and writing videos with OpenCV: frames in RGB, decoded ahead in a bounded thread, clear errors.

:class:`VideoReader` reads a video file (or, when asked, a camera or a network stream) and yields
:class:`Frame` s; :class:`VideoWriter` writes RGB frames to ``.mp4`` (mp4v), ``.avi`` (MJPG) or
``.webm`` (VP8). Both use OpenCV's FFmpeg backend and nothing else.

Errors, for a file given as a video:

- no file: ``FileNotFoundError``; a folder: ``IsADirectoryError``;
- a file OpenCV cannot open, or one without a readable frame: :class:`VideoOpenError` naming the
  file, why (empty, an image, an MP4 without its index...) and what was expected;
- a truncated or corrupt video: every frame that can be read is yielded, then
  :class:`VideoDecodeError` names the file, the frame index where reading stopped and the frame
  count the container announced. Counts can be approximate, so a video counts as cut short when
  it yields fewer frames than announced minus :func:`~detect.inference.sniff.frame_count_tolerance`
  (1 %, at least 2), or fewer than announced while its container is structurally incomplete
  (:func:`~detect.inference.sniff.container_problem`: a RIFF or ISO-BMFF size that runs past the
  end of the file, a RIFF size never written).

Cameras and stream URLs are opened only when the caller passes ``allow_stream=True`` (``detect
predict --stream``): the project never opens a network connection or a device the user did not
ask for.

Partial output and crashes (measured with opencv-python 5.0's FFmpeg writer, 160x120 frames at
25 fps; ``tests/detect/test_video_io.py`` checks it): a writer that is released writes a complete,
playable file whatever the container. One whose process is killed with ``kill -9`` (or crashes)
before ``release()`` leaves:

- ``.mp4`` (mp4v): an unplayable file. MP4 writes its index (the ``moov`` box) last and the
  ``mdat`` box's size is never filled in: nothing opens it (:class:`VideoOpenError`: "it has no
  moov box"), however many frames were written.
- ``.avi`` (MJPG): a readable file. AVI needs no index and every MJPG frame stands alone: OpenCV
  reads every frame FFmpeg had flushed to disk (it writes in chunks of 256 KiB, so the frames of
  the last chunk are lost: 58 of 60, 287 of 300), then :class:`VideoReader` raises
  :class:`VideoDecodeError` because the RIFF size was never written.
- ``.webm`` (VP8): the muxer holds clusters of about 5 seconds in memory, so a short file is empty
  (0 bytes after 60 frames) and a longer one readable up to its last complete cluster (271 of
  300), with no error: a Matroska file may legitimately have no size (live recordings), so the
  cut cannot be told from the file.

So **use .avi for crash-proof partial output**: it loses the least and the reader says it was cut.
For a polite stop (``kill`` sends SIGTERM, Ctrl-C SIGINT), write inside :func:`sigterm_raises` and
a ``with VideoWriter(...)`` block: SIGTERM then ends the loop with an exception, the writer is
released in its ``finally`` and the file is playable in every container.

A file cut short usually ends inside a frame: that last frame comes out partly decoded (the rest
grey or smeared) before :class:`VideoDecodeError`; OpenCV gives no way to tell it apart.
"""

from __future__ import annotations

import math
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from classify.base.paths import require_file
from detect.inference.prefetch import Prefetcher, background
from detect.inference.sniff import container_problem, frame_count_tolerance, image_format, read_head

__all__ = ["STREAM_SCHEMES", "VIDEO_CODECS", "Frame", "Terminated", "VideoDecodeError", "VideoOpenError",
           "VideoReader", "VideoWriter", "describe_stream", "sigterm_raises", "stream_source"]

#: URL schemes read as network streams (only with ``allow_stream=True``).
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https")

#: Output extension -> FourCC that :class:`VideoWriter` uses. These write with the FFmpeg that
#: ships in opencv-python; H.264 (``avc1``) does not (no encoder in that build).
VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG", ".webm": "VP80"}

_CODEC_NAMES = {"mp4v": "MPEG-4 part 2", "MJPG": "Motion JPEG", "VP80": "VP8"}
_VIDEO_EXAMPLES = ".mp4, .avi, .mkv, .webm, .mov"


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded video frame.

    Attributes:
        index: 0-based index of the frame in the video (with a stride, the kept frames' indices:
            0, s, 2s...).
        timestamp: seconds since the start: the container's position of the frame when it is
            reliable (finite, not negative, later than the previous frame's), else ``index / fps``
            (else, with no frame rate, seconds since the first frame). For streams the first
            frame is 0.
        image: ``uint8`` array ``[H, W, 3]``, RGB.
    """

    index: int
    timestamp: float
    image: np.ndarray = field(repr=False)


class VideoOpenError(ValueError):
    """A video that cannot be opened, or has no readable frame. ``source`` and ``reason`` are kept."""

    def __init__(self, source: Path | str | int, reason: str, *, what: str | None = None) -> None:
        self.source, self.reason = source, reason
        what = what or f"video {source}"
        super().__init__(f"cannot open {what}: {reason}")


class VideoDecodeError(ValueError):
    """A video that stopped before its end: truncated or corrupt.

    Raised after every readable frame was yielded. OpenCV reports neither errors nor skipped
    frames, so this is judged at the end from the count of frames read (see the module's
    documentation). Corrupt frames in the middle that FFmpeg skips are not seen where they
    are: the frames after them come with indices and timestamps shifted down, and the shortfall
    is reported here, with ``index`` the number of frames read.

    Attributes:
        path: the file.
        index: the 0-based index of the first frame that could not be read (= frames read).
        announced: the frame count the container announced (None: it announced none).
        problem: what is structurally wrong with the container, if that is known.
    """

    def __init__(self, path: Path, index: int, announced: int | None, problem: str | None = None) -> None:
        self.path, self.index, self.announced, self.problem = path, index, announced, problem
        count = f"the container announces {announced} frames" if announced else "the container announces no frame count"
        super().__init__(f"cannot read video {path} to the end: reading stopped at frame {index}, {count}"
                         + (f"; {problem}" if problem else " (truncated or corrupt)"))


def _redact(url: str) -> str:
    """``url`` without the password it may carry (``rtsp://user:***@host/...``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def describe_stream(stream: int | str) -> str:
    """``camera 0`` or ``stream rtsp://user:***@host/path`` (passwords hidden), for messages."""
    return f"camera {stream}" if isinstance(stream, int) else f"stream {_redact(stream)}"


def stream_source(source: str | Path | int, *, allow_stream: bool = False) -> int | str | None:
    """The camera index or stream URL that ``source`` names, or None when it names a file.

    A camera is an ``int`` or a string of ASCII digits that is not an existing path (a file or
    folder named ``2024`` stays a path); a stream is a string URL whose scheme is one of
    :data:`STREAM_SCHEMES`. A ``Path`` is always a path.

    Raises:
        ValueError: a camera or stream while ``allow_stream`` is false (the message says to pass
            ``--stream``); a negative camera index; a URL of another scheme (``ftp://``...).
    """
    if isinstance(source, bool):
        raise TypeError(f"video source: expected a path, a camera index or a URL, got {source!r}")
    stream: int | str | None = None
    if isinstance(source, int):
        if source < 0:
            raise ValueError(f"camera index: expected 0 or more, got {source}")
        stream = source
    elif isinstance(source, str):
        scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", source)
        if source.isascii() and source.isdigit() and not Path(source).exists():
            stream = int(source)
        elif scheme and scheme.group(1).lower() in STREAM_SCHEMES:
            stream = source
        elif scheme:
            raise ValueError(f"unsupported URL {_redact(source)!r}: streams are read from "
                             + ", ".join(f"{s}://" for s in STREAM_SCHEMES) + " URLs; files are given as paths")
    if stream is not None and not allow_stream:
        kind = ("a camera index: reading it opens the camera" if isinstance(stream, int)
                else "a stream URL: reading it opens a network connection")
        raise ValueError(f"SOURCE {_redact(str(stream))!r} is {kind}, which this project does only when asked: "
                         "pass --stream (allow_stream=True)")
    return stream


def _open_failure(path: Path) -> str:
    """Why OpenCV could not open the file at ``path``, from its first bytes."""
    head = read_head(path)
    problem = container_problem(path)
    if problem:
        return problem
    return f"OpenCV (FFmpeg) cannot read it as a video; it starts with {head[:16]!r}"


def _positive(value: float) -> float | None:
    return float(value) if math.isfinite(value) and value > 0 else None


class _Clock:
    """Frame timestamps: the container's position when reliable, else ``index / fps``."""

    def __init__(self, fps: float | None, relative: bool) -> None:
        self.fps, self.relative = fps, relative
        self.origin: float | None = None
        self.previous: float | None = None
        self.started = time.monotonic()

    def __call__(self, index: int, position_ms: float) -> float:
        seconds = position_ms / 1000 if math.isfinite(position_ms) and position_ms >= 0 else None
        if seconds is not None and self.relative:  # streams: the first frame is 0
            self.origin = seconds if self.origin is None else self.origin
            seconds -= self.origin
        if seconds is None or (self.previous is not None and seconds <= self.previous):
            seconds = index / self.fps if self.fps else time.monotonic() - self.started
        self.previous = seconds
        return seconds


def _rgb(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB if bgr.ndim == 2 else cv2.COLOR_BGR2RGB)


def _frames(capture: cv2.VideoCapture, first: np.ndarray, first_position: float, *, start: int, stride: int,
            clock: _Clock, check_end: Callable[[int], None] | None) -> Iterator[Frame]:
    """The frames ``start``, ``start + stride``... of an opened capture whose frame 0 was read
    already; releases it when done.

    Runs in the prefetch thread and holds no reference to the :class:`VideoReader`, so a reader
    dropped without ``close()`` is collected and its thread stopped.
    """
    index = 0
    try:
        if start == 0:
            yield Frame(0, clock(0, first_position), _rgb(first))
        index = 1
        while True:
            if index < start or (index - start) % stride:
                if not capture.grab():  # skipped frames are not converted (nor decoded, for intra-only codecs)
                    break
            else:
                ok, bgr = capture.read()
                if not ok:
                    break
                yield Frame(index, clock(index, capture.get(cv2.CAP_PROP_POS_MSEC)), _rgb(bgr))
            index += 1
    finally:
        capture.release()
    if check_end is not None:
        check_end(index)


def _end_check(path: Path, announced: int | None) -> Callable[[int], None]:
    """What :func:`_frames` calls with the number of frames read once reading stops: raises
    :class:`VideoDecodeError` when the video stopped short (a closure over values, not over the reader)."""

    def check(read: int) -> None:
        problem = container_problem(path)
        short = announced is not None and read < announced - frame_count_tolerance(announced)
        if short or (problem and (announced is None or read < announced)):
            raise VideoDecodeError(path, read, announced, problem)

    return check


class VideoReader(Iterator[Frame]):
    """The frames of a video, decoded by OpenCV in a background thread a bounded queue ahead.

    ::

        with VideoReader("clip.mp4", stride=2) as video:
            print(video.fps, video.frame_count, video.width, video.height)
            for frame in video:          # Frame(index, timestamp, image RGB uint8 [H, W, 3])
                ...

    Opening reads frame 0 (so an unreadable file fails here, not in the loop) and takes
    ``width`` and ``height`` from it. Iterating starts the thread (:func:`~detect.inference.prefetch.background`),
    which keeps at most ``queue_size`` decoded frames waiting: memory stays flat on long input.
    The reader is an iterator: it is read once. ``close()`` (or leaving the ``with`` block)
    stops the thread and releases the capture, also when the loop stopped early; the reader
    then yields nothing more. An error in the thread is raised by the loop, after the frames
    read before it.

    Args:
        source: a video file, or (with ``allow_stream``) a camera index (``0`` or ``"0"``) or
            a stream URL (``rtsp://``, ``rtsps://``, ``rtmp://``, ``http://``, ``https://``).
        stride: keep frames 0, stride, 2 * stride...; the others are skipped with ``grab()``,
            which neither converts nor copies them (inter-frame codecs such as H.264 still
            decode them: their later frames depend on them).
        start: the first frame kept (then ``start + stride``...), to resume a run; the frames
            before it are skipped with ``grab()`` and keep their indices and timestamps.
        queue_size: how many decoded frames may wait for the consumer.
        allow_stream: whether a camera or a URL may be opened.

    Attributes:
        source: the file (``Path``), the camera index or the URL.
        fps: frames per second the container announces (None when unknown).
        frame_count: frames the container announces (None when unknown: streams, files that
            announce none). Counts some containers estimate from the duration can be off by one
            or two; the frames actually yielded are those that decode.
        width, height: frame size in pixels (of frame 0).
        stride, start: as given.

    Raises:
        FileNotFoundError / IsADirectoryError: no file at ``source``.
        VideoOpenError: OpenCV cannot open it, or it has no readable frame.
        VideoDecodeError: (while iterating, after the last readable frame) the video stopped
            short of its announced length (see the module's documentation for the tolerance).
        ValueError: a camera or URL without ``allow_stream``; ``stride`` or ``queue_size`` not
            a positive integer.
    """

    def __init__(self, source: str | Path | int, *, stride: int = 1, queue_size: int = 8,
                 allow_stream: bool = False, start: int = 0) -> None:
        for name, value in (("stride", stride), ("queue_size", queue_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"VideoReader {name}: expected a positive integer, got {value!r}")
        if not isinstance(start, int) or isinstance(start, bool) or start < 0:
            raise ValueError(f"VideoReader start: expected a frame index (0 or more), got {start!r}")
        self.stride, self.start, self._queue_size = stride, start, queue_size
        stream = stream_source(source, allow_stream=allow_stream)
        self.is_stream = stream is not None
        if stream is not None:
            self.source: Path | str | int = stream
            what = describe_stream(stream)
            capture = cv2.VideoCapture(stream) if isinstance(stream, int) else cv2.VideoCapture(stream, cv2.CAP_FFMPEG)
            if not capture.isOpened():
                raise VideoOpenError(stream, "OpenCV could not open it (no such device, or the stream does not answer)",
                                     what=what)
        else:
            path = require_file(source, "video")
            self.source = path
            what = f"video {path}"
            if path.stat().st_size == 0:
                raise VideoOpenError(path, "the file is empty (zero bytes); expected a video file "
                                     f"({_VIDEO_EXAMPLES}...)")
            image = image_format(read_head(path))
            if image:  # FFmpeg would open it as a one-frame video
                raise VideoOpenError(path, f"it is a {image} image, not a video; expected a video file "
                                     f"({_VIDEO_EXAMPLES}...)")
            # an absolute path: FFmpeg never reads a file name such as "http:x" as a protocol
            capture = cv2.VideoCapture(os.path.abspath(path), cv2.CAP_FFMPEG)
            if not capture.isOpened():
                raise VideoOpenError(path, f"{_open_failure(path)}; expected a video file ({_VIDEO_EXAMPLES}...)")
        self.fps = _positive(capture.get(cv2.CAP_PROP_FPS))
        count = _positive(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = int(count) if count is not None and not self.is_stream and count < 2**40 else None
        ok, first = capture.read()
        if not ok or first is None:
            capture.release()
            announced = f" (the container announces {self.frame_count} frames)" if self.frame_count else ""
            raise VideoOpenError(self.source, f"it has no readable frame{announced}", what=what)
        self.height, self.width = first.shape[:2]
        self._what = what
        self._capture: cv2.VideoCapture | None = capture
        self._first: tuple[np.ndarray, float] | None = (first, capture.get(cv2.CAP_PROP_POS_MSEC))
        self._frames: Prefetcher[Frame] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return (f"VideoReader({self._what}, {self.width}x{self.height}, fps={self.fps}, "
                f"frame_count={self.frame_count}, stride={self.stride})")

    def __iter__(self) -> VideoReader:
        return self

    def __next__(self) -> Frame:
        if self._frames is None:
            if self._closed:
                raise StopIteration
            first, position = self._first
            check = None if self.is_stream else _end_check(self.source, self.frame_count)
            frames = _frames(self._capture, first, position, start=self.start, stride=self.stride,
                             clock=_Clock(self.fps, relative=self.is_stream), check_end=check)
            self._capture = self._first = None  # the thread owns the capture from now on
            self._frames = background(frames, self._queue_size, name=f"VideoReader {self._what}")
        return next(self._frames)

    def close(self) -> None:
        """Stop the decoding thread (promptly, also mid-video) and release the capture. Idempotent."""
        self._closed = True
        if self._frames is not None:
            self._frames.close()
        elif self._capture is not None:
            self._capture.release()
            self._capture = self._first = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class VideoWriter:
    """Write RGB frames to a video file; the codec follows the extension (:data:`VIDEO_CODECS`).

    ::

        with sigterm_raises(), VideoWriter("out.avi", fps=video.fps or 30, size=(w, h)) as out:
            for frame in frames:
                out.write(frame)        # uint8 [h, w, 3] RGB

    The writer is released when the ``with`` block ends, also by an exception, so the file is
    complete and playable after an error or SIGTERM (:func:`sigterm_raises`) in the loop. A
    process killed with ``kill -9`` leaves a readable ``.avi`` but an unplayable ``.mp4`` (see the
    module's documentation): use .avi for crash-proof partial output. The file is written in
    place (no temporary file: partial output is the point), and an existing file is replaced.

    Odd widths or heights: the FFmpeg encoders work on even sizes, and OpenCV scales each frame
    to the even size below (33x25 is stored as 32x24). Writing ``.webm`` makes OpenCV print a
    harmless "tag ... is not supported" line on stderr.

    Args:
        path: the output file; its folder must exist. ``.mp4`` (mp4v), ``.avi`` (MJPG) or
            ``.webm`` (VP8), in any case.
        fps: frames per second (positive).
        size: ``(width, height)`` of every frame, in pixels.

    Raises:
        ValueError: an unsupported extension, a non-positive ``fps`` or ``size``, or OpenCV
            could not open a writer; (``write``) a frame of another size, type or channel count.
        FileNotFoundError: the folder of ``path`` does not exist.
        IsADirectoryError: ``path`` is a folder.
    """

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in VIDEO_CODECS:
            expected = ", ".join(f"{ext} ({_CODEC_NAMES[c]})" for ext, c in VIDEO_CODECS.items())
            raise ValueError(f"video output {self.path}: unsupported extension {suffix or '(none)'!r}; "
                             f"expected one of {expected}")
        self.codec = VIDEO_CODECS[suffix]
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
            raise ValueError(f"video output {self.path}: fps must be a positive number, got {fps!r}")
        try:
            width, height = (int(v) for v in size)
        except (TypeError, ValueError):
            raise ValueError(f"video output {self.path}: size must be (width, height), got {size!r}") from None
        if width <= 0 or height <= 0 or (width, height) != tuple(size):
            raise ValueError(f"video output {self.path}: size must be two positive integers (width, height), "
                             f"got {size!r}")
        if self.path.is_dir():
            raise IsADirectoryError(f"video output: expected a file, got the folder {self.path}")
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"video output {self.path}: the folder {self.path.parent} does not exist")
        self.fps, self.size = float(fps), (width, height)
        self.frames_written = 0
        self._writer: cv2.VideoWriter | None = cv2.VideoWriter(
            os.path.abspath(self.path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*self.codec), self.fps, self.size)
        if not self._writer.isOpened():
            self._writer = None
            raise ValueError(f"cannot write video {self.path}: OpenCV (FFmpeg) could not open a "
                             f"{_CODEC_NAMES[self.codec]} ({self.codec}) writer for {width}x{height} at {fps:g} fps")

    def __repr__(self) -> str:
        state = "closed" if self._writer is None else "open"
        return (f"VideoWriter({self.path}, {self.codec}, {self.size[0]}x{self.size[1]}, fps={self.fps:g}, "
                f"{self.frames_written} frames, {state})")

    def write(self, image: np.ndarray) -> None:
        """Append one frame: a ``uint8`` array ``[height, width, 3]`` in RGB, of the writer's size."""
        if self._writer is None:
            raise ValueError(f"video output {self.path}: the writer is closed")
        width, height = self.size
        if (not isinstance(image, np.ndarray) or image.dtype != np.uint8
                or image.shape != (height, width, 3)):
            got = (f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray)
                   else type(image).__name__)
            raise ValueError(f"video output {self.path}, frame {self.frames_written}: expected a uint8 RGB array "
                             f"of shape ({height}, {width}, 3) (the writer's size {width}x{height}), got {got}")
        self._writer.write(cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
        self.frames_written += 1

    def close(self) -> None:
        """Finish the file (index, sizes) and release the writer. Idempotent."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.release()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Terminated(SystemExit):
    """SIGTERM received inside :func:`sigterm_raises`; exits with status 143 (128 + SIGTERM) if not caught.

    A ``SystemExit``: ``except Exception`` blocks do not swallow it, ``finally`` blocks and
    ``with`` blocks run on its way out, like Ctrl-C's ``KeyboardInterrupt``.
    """

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)

    def __str__(self) -> str:
        return "terminated by SIGTERM"


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Inside the block, SIGTERM raises :class:`Terminated` in the main thread; the old handler is restored after.

    Python's default for SIGTERM ends the process at once, without running ``finally`` blocks:
    a video being written is then left without its index (an unplayable ``.mp4``). With this
    block around the writing loop, ``kill PID`` stops the loop through the normal exception
    path, ``VideoWriter`` releases the file and the process exits with status 143. Only the
    first SIGTERM raises (a second one, while cleaning up, is ignored). Outside the main
    thread (where Python cannot set signal handlers) the block changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def handler(signum: int, frame: object) -> None:
        nonlocal fired
        if not fired:
            fired = True
            raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
