"""An uploaded image, checked before a pixel is decoded: size, kind (from the content), pixel count.

:func:`decode_upload` turns the bytes of a request into RGB pixels or raises an
:class:`~detect.serve.errors.ApiError` that says what was expected and what came:

* 400 — an empty body;
* 413 — more pixels than ``max_pixels`` (read from the header: a decompression bomb is never decoded);
* 415 — not an image (the content decides, never a file name), naming what it is (a PDF, an MP4 video, text...);
* 422 — an image whose pixels do not decode (corrupt, truncated).

The byte limit itself is enforced while the body arrives (:class:`~detect.serve.limits.BodyLimit`).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from classify.base.images import pillow_bomb_pixels, pillow_open
from detect.inference.sniff import image_format, video_container
from detect.serve.errors import ApiError

#: what an image upload may be (Pillow's format names, as :func:`detect.inference.sniff.image_format` gives them)
IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP", "PPM")
EXPECTED_IMAGE = f"an image ({', '.join(IMAGE_FORMATS)})"

_SIGNATURES = ((b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive"), (b"\x1f\x8b", "gzip data"),
               (b"\x7fELF", "an ELF executable"), (b"{", "JSON or text"), (b"<", "HTML or XML"))


def describe_content(data: bytes) -> str:
    """What ``data`` looks like, for an error message: ``"a PNG image"``, ``"an MP4 video"``,
    ``"a PDF document"``, ``"text starting 'hello'"``, ``"binary data starting 00ff..."``."""
    if not data:
        return "an empty body (0 bytes)"
    head = data[:384]
    if fmt := image_format(head):
        return f"a {fmt} image"
    if container := video_container(head):
        return f"a video ({container})"
    for signature, what in _SIGNATURES:
        if head.startswith(signature):
            return what
    try:
        text = head[:40].decode("utf-8")
        return f"text starting {text!r}"
    except UnicodeDecodeError:
        return f"binary data starting {head[:8].hex()}"


def decode_upload(data: bytes, max_pixels: int, what: str = "the upload") -> np.ndarray:
    """``uint8[H, W, 3]`` RGB pixels of the image in ``data`` (see the module docstring for errors)."""
    if not data:
        raise ApiError(400, f"{what} is empty", expected=EXPECTED_IMAGE, got="0 bytes")
    fmt = image_format(data[:384])
    if fmt not in IMAGE_FORMATS:
        raise ApiError(415, f"{what} is not an image this service reads", expected=EXPECTED_IMAGE,
                       got=describe_content(data))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = pillow_open()(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        pixels = pillow_bomb_pixels(exc)
        raise ApiError(413, f"{what} is a {fmt} image of {pixels or 'too many'} pixels, over the limit of {max_pixels}",
                       expected=f"at most {max_pixels} pixels (width x height)", got=f"{pixels} pixels") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for unreadable headers
        reason = "Pillow cannot identify it" if "cannot identify" in str(exc) else str(exc)
        raise ApiError(422, f"{what} is a {fmt} image whose header cannot be read ({reason})",
                       expected=f"a readable {fmt} image", got=f"{len(data)} bytes") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ApiError(413, f"{what} is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}",
                       expected=f"at most {max_pixels} pixels (width x height)", got=f"{width}x{height}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns, then raises, on truncated data: the error is the answer
            rgb = image.convert("RGB")
            rgb.load()
    except Exception as exc:  # noqa: BLE001 - corrupt or truncated data: Pillow's own reason
        raise ApiError(422, f"{what} is a {fmt} image that does not decode ({exc})",
                       expected=f"a complete {fmt} image", got=f"{len(data)} bytes, {width}x{height} declared") from None
    finally:
        image.close()
    return np.asarray(rgb)
