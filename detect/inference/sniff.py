"""What a file holds, from its first bytes: an image format, a video container, a truncated container.

Content decides, never the extension: a PNG named ``.jpg`` is a PNG, a text file named ``.mp4``
is not a video. Sniffing reads the first :data:`HEAD_BYTES` bytes of a file (a few more for
:func:`container_problem`, which walks the container's top-level structure with seeks) and
decodes nothing; whether the pixels themselves decode is found out when the image is opened
(:func:`classify.base.images.open_image`) or the video read (:class:`~detect.inference.video.VideoReader`).

Images (:func:`sniff_image`; the names are Pillow's ``Image.format``): JPEG, PNG, GIF, BMP,
TIFF, WEBP, PPM (the PBM / PGM / PPM family, ``P1``-``P6``), JPEG2000, AVIF, QOI. Other formats
Pillow can read without a signature (TGA...) are not recognised.

Videos (:func:`sniff_video`): AVI (``RIFF....AVI ``), MP4 (ISO-BMFF ``ftyp``: .mp4, .mov, .m4v,
.3gp; image and audio brands such as AVIF, HEIC and M4A excluded), Matroska (EBML: .mkv, .webm),
MPEG-TS, MPEG-PS, FLV and ASF (.wmv) by signature; any other file only if OpenCV opens it and
reads a frame (``probe=True``).
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path

__all__ = ["HEAD_BYTES", "container_problem", "frame_count_tolerance", "image_format", "read_head", "sniff_image",
           "sniff_video", "video_container"]

#: How many bytes of a file the signatures look at (MPEG-TS needs three 188-byte packets).
HEAD_BYTES = 384

# ISO-BMFF brands of files that are not videos: still images (HEIF, AVIF) and audio (M4A...)
_IMAGE_BRANDS = {b"avif": "AVIF", b"avis": "AVIF", b"heic": "HEIC", b"heix": "HEIC", b"heim": "HEIC",
                 b"heis": "HEIC", b"hevc": "HEIC", b"hevx": "HEIC", b"mif1": "HEIF", b"mif2": "HEIF",
                 b"msf1": "HEIF"}
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
_BMP_HEADER_SIZES = {12, 40, 52, 56, 64, 108, 124}
_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")


def read_head(path: str | Path, size: int = HEAD_BYTES) -> bytes:
    """The first ``size`` bytes of the file at ``path`` (fewer if the file is shorter)."""
    with open(path, "rb") as f:
        return f.read(size)


def _ftyp_brand(head: bytes) -> bytes | None:
    """The major brand of an ISO-BMFF file (``ftyp`` box first), else None."""
    return head[8:12] if len(head) >= 12 and head[4:8] == b"ftyp" else None


def image_format(head: bytes) -> str | None:
    """The image format whose signature ``head`` (a file's first bytes) starts with, else None.

    Names are Pillow's (``"JPEG"``, ``"PNG"``, ``"GIF"``, ``"BMP"``, ``"TIFF"``, ``"WEBP"``,
    ``"PPM"``, ``"JPEG2000"``, ``"AVIF"``, ``"QOI"``).
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head.startswith(b"BM") and len(head) >= 18 and struct.unpack("<I", head[14:18])[0] in _BMP_HEADER_SIZES:
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if len(head) >= 3 and head[0:1] == b"P" and head[1:2] in b"123456" and head[2:3] in b" \t\r\n#":
        return "PPM"
    if head.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return "JPEG2000"
    if _ftyp_brand(head) in (b"avif", b"avis"):
        return "AVIF"
    if head.startswith(b"qoif"):
        return "QOI"
    return None


def sniff_image(path: str | Path) -> str | None:
    """The image format of the file at ``path`` from its first bytes (Pillow's name), or None.

    Reads :data:`HEAD_BYTES` bytes and decodes nothing: a truncated or corrupt image with an
    intact signature is still reported (its decode error comes when it is opened). See
    :func:`image_format` for the formats recognised.

    Raises:
        OSError: the file cannot be read (``FileNotFoundError``, ``PermissionError``...).
    """
    return image_format(read_head(path))


def video_container(head: bytes) -> str | None:
    """The video container whose signature ``head`` (a file's first bytes) starts with, else None.

    ``"AVI"``, ``"MP4"`` (ISO-BMFF: mp4, mov, m4v, 3gp), ``"Matroska"`` (mkv, webm),
    ``"MPEG-TS"``, ``"MPEG-PS"``, ``"FLV"``, ``"ASF"``. ISO-BMFF files with an image or audio
    brand (AVIF, HEIC, M4A...) are not videos.
    """
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    brand = _ftyp_brand(head)
    if brand is not None:
        return None if brand in _IMAGE_BRANDS or brand in _AUDIO_BRANDS else "MP4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "Matroska"
    if len(head) >= 377 and head[0] == head[188] == head[376] == 0x47:
        return "MPEG-TS"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "MPEG-PS"
    if head.startswith(b"FLV\x01"):
        return "FLV"
    if head.startswith(_ASF_GUID):
        return "ASF"
    return None


def sniff_video(path: str | Path, *, probe: bool = True) -> str | None:
    """The container of the video at ``path`` (see :func:`video_container`), or None if it is not one.

    A file with none of the known signatures is tried with OpenCV when ``probe`` is true: if
    OpenCV's FFmpeg backend opens it and reads a frame it is a video, named ``"video"``. Probing
    is skipped for empty files and for files with an image signature (FFmpeg would open a JPEG
    as a one-frame video). Use ``probe=False`` for quick scans of many files (folders).

    The result is truthy exactly when the file is a video, so it reads as a boolean too.

    Raises:
        OSError: the file cannot be read.
    """
    head = read_head(path)
    container = video_container(head)
    if container is not None or not probe or not head or image_format(head) is not None:
        return container
    import cv2

    capture = cv2.VideoCapture(os.path.abspath(path), cv2.CAP_FFMPEG)
    try:
        return "video" if capture.isOpened() and capture.grab() else None
    finally:
        capture.release()


def _riff_problem(size: int, declared: int) -> str | None:
    if declared in (0, 0xFFFFFFFF):
        return "its RIFF header has no size: the writer never finished it (killed before closing?)"
    if declared + 8 > size:
        return f"its RIFF header announces {declared + 8} bytes but the file has {size}: truncated"
    return None


def _bmff_problem(f, size: int) -> str | None:
    """Walk the top-level boxes of an ISO-BMFF file; the first structural problem found."""
    offset, seen = 0, set()
    for _ in range(100_000):
        if offset >= size:
            break
        f.seek(offset)
        header = f.read(16)
        if len(header) < 8:
            return f"it ends inside a box header at byte {offset}: truncated"
        box_size, kind = struct.unpack(">I4s", header[:8])
        name = kind.decode("latin-1")
        if box_size == 1:
            if len(header) < 16:
                return f"it ends inside a box header at byte {offset}: truncated"
            box_size = struct.unpack(">Q", header[8:16])[0]
        elif box_size == 0:  # the box runs to the end of the file: how unfinished writers leave mdat
            box_size = size - offset
            if kind == b"mdat" and b"moov" not in seen:
                return ("it has no moov box (the index an MP4/MOV needs): its writer never finished it "
                        "(killed before closing?) or the file is truncated")
        if box_size < 8:
            return f"its {name!r} box at byte {offset} has an invalid size {box_size}"
        if offset + box_size > size:
            lost = "" if b"moov" in seen else " (and the index an MP4 writes last, its moov box, is lost)"
            return f"its {name!r} box ends at byte {offset + box_size} but the file has {size} bytes: truncated{lost}"
        seen.add(kind)
        offset += box_size
    if b"moov" not in seen:
        return "it has no moov box (the index an MP4/MOV needs): the file is truncated or was never finished"
    return None


def _ebml_size(f) -> int | None:
    """Read an EBML variable-size integer; None for "unknown size" (all value bits set)."""
    first = f.read(1)
    if not first:
        raise EOFError
    length = 9 - first[0].bit_length() if first[0] else 9
    if length > 8:
        raise ValueError("invalid EBML size")
    rest = f.read(length - 1)
    if len(rest) < length - 1:
        raise EOFError
    value = first[0] & ((1 << (8 - length)) - 1)
    for byte in rest:
        value = value << 8 | byte
    return None if value == (1 << (7 * length)) - 1 else value


def _ebml_problem(f, size: int) -> str | None:
    """A Matroska / WebM whose Segment has a known size that runs past the end of the file."""
    try:
        f.seek(4)
        header_size = _ebml_size(f)
        if header_size is None:
            return None
        f.seek(header_size, os.SEEK_CUR)
        if f.read(4) != b"\x18\x53\x80\x67":  # Segment
            return None
        segment_size = _ebml_size(f)
    except EOFError:
        return "it ends inside its EBML header: truncated"
    except ValueError:
        return None
    if segment_size is not None and f.tell() + segment_size > size:
        return f"its Segment announces {f.tell() + segment_size} bytes but the file has {size}: truncated"
    return None  # an unknown size is legitimate (live recordings): not judged


def container_problem(path: str | Path) -> str | None:
    """Why the container of the video at ``path`` is structurally incomplete, or None if it looks whole.

    Checked from the container's own sizes, without decoding: AVI (the RIFF size: missing when
    the writer was killed, larger than the file when truncated), MP4 / MOV (top-level boxes
    running past the end of the file, no ``moov`` index) and Matroska / WebM (a Segment of known
    size running past the end). Other containers: None. The reason is a clause such as
    ``"its RIFF header announces 395910 bytes but the file has 356319: truncated"``.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
        container = video_container(head)
        if container == "AVI":
            return _riff_problem(size, struct.unpack("<I", head[4:8])[0])
        if container == "MP4":
            return _bmff_problem(f, size)
        if container == "Matroska":
            return _ebml_problem(f, size)
    return None


def frame_count_tolerance(announced: int) -> int:
    """How many frames fewer than announced a video may yield before it counts as cut short.

    Containers that store a frame count (AVI, MP4) are exact; for the others OpenCV estimates the
    count from the duration and the frame rate, which can be off by a frame or two, more for a
    variable frame rate: 1 % of the announced count, at least 2 frames.
    """
    return max(2, math.ceil(announced / 100))
