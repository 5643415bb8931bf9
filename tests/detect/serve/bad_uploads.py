"""Uploads a detection service must refuse, each with the status it must answer: what came, made
from real formats (a PNG cut short, a header claiming 30000 x 30000 pixels, a PDF...)."""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image


def encoded(fmt: str, size: tuple[int, int] = (64, 48), seed: int = 0) -> bytes:
    """A noisy RGB image of ``size`` (width, height) encoded as ``fmt`` (a Pillow format name)."""
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A ~70-byte PNG whose header claims ``width x height`` pixels (a decompression bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(16))) + chunk(b"IEND", b"")


def bmp_claiming(width: int, height: int) -> bytes:
    """A BMP header (no pixels) claiming ``width x height`` 24-bit pixels."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + len(info), 0, 0, 54) + info


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real JPEG whose frame header (SOF0) is rewritten to claim ``width x height``."""
    data = bytearray(encoded("JPEG"))
    at = data.index(b"\xff\xc0") + 5
    data[at:at + 4] = struct.pack(">HH", height, width)
    return bytes(data)


def corrupt_png() -> bytes:
    """A PNG whose compressed pixel data is overwritten (its IDAT checksum fails)."""
    data = bytearray(encoded("PNG"))
    start = data.index(b"IDAT") + 20
    data[start:start + 64] = bytes(64)
    return bytes(data)


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.txt", "hello")
    return buffer.getvalue()


def mp4_head() -> bytes:
    return struct.pack(">I", 24) + b"ftypisom" + b"\x00\x00\x02\x00isomiso2" + bytes(64)


@dataclass(frozen=True)
class BadUpload:
    """``body`` must be answered ``status``; the error's message or ``got`` mentions ``says``."""

    name: str
    body: bytes
    status: int
    says: str


def bad_images() -> list[BadUpload]:
    """Every kind of bad image body, with the answer it must get (with the service's default limits)."""
    png, jpeg = encoded("PNG"), encoded("JPEG")
    return [
        BadUpload("empty", b"", 400, "empty"),
        BadUpload("text", b"hello, this is not an image", 415, "text"),
        BadUpload("pdf", b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n", 415, "PDF"),
        BadUpload("zip", zip_bytes(), 415, "ZIP"),
        BadUpload("gzip", gzip.compress(b"x" * 100), 415, "gzip"),
        BadUpload("html", b"<html><body>hi</body></html>", 415, "HTML"),
        BadUpload("json", b'{"image": "cat.jpg"}', 415, "JSON"),
        BadUpload("mp4 video", mp4_head(), 415, "video"),
        BadUpload("elf", b"\x7fELF" + bytes(60), 415, "ELF"),
        BadUpload("random bytes", bytes(np.random.default_rng(1).integers(128, 255, 200, dtype=np.uint8)), 415,
                  "binary data"),
        BadUpload("png signature only", png[:8], 422, "PNG"),
        BadUpload("png cut in half", png[: len(png) // 2], 422, "PNG"),
        BadUpload("png corrupt pixels", corrupt_png(), 422, "PNG"),
        BadUpload("jpeg cut short", jpeg[:300], 422, "JPEG"),
        BadUpload("gif cut short", encoded("GIF")[:40], 422, "GIF"),
        BadUpload("bmp without pixels", bmp_claiming(64, 48), 422, "BMP"),
        BadUpload("tiff cut short", encoded("TIFF")[:100], 422, "TIFF"),
        BadUpload("webp cut short", encoded("WEBP")[:30], 422, "WEBP"),
        BadUpload("png bomb 30000x30000", png_claiming(30000, 30000), 413, "900000000 pixels"),
        BadUpload("png 8000x6000 over 40 Mpx", png_claiming(8000, 6000), 413, "8000x6000"),
        BadUpload("jpeg bomb 60000x60000", jpeg_claiming(60000, 60000), 413, "pixels"),
        BadUpload("bmp bomb 50000x50000", bmp_claiming(50000, 50000), 413, "pixels"),
    ]
