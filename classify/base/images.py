"""Opening image files: one pixel limit for every decode, checked from the header first.

Every image that ``classify`` or ``detect`` decodes is opened by :func:`open_image` (Pillow
decoders) or checked by :func:`check_image_file` (OpenCV decoders) first. Both read only the
file's header and refuse an image of more than :data:`MAX_IMAGE_PIXELS` pixels before any pixel
is decoded, so a decompression bomb (a small file that claims a huge size) is an error naming
the file, its size and the limit, never an out-of-memory kill. Files are opened with Pillow's
own ``Image.open`` (:func:`pillow_open`), not a wrapper a library installed over it.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from classify.base.paths import require_file

#: The most pixels (``width * height``) an image may have. Pillow's own default warning
#: threshold (a quarter GiB of 3-byte pixels); Pillow itself refuses twice this many when
#: opening, which :func:`open_image` reports as over this limit too (so raising this limit
#: beyond ``2 * PIL.Image.MAX_IMAGE_PIXELS`` needs Pillow's raised as well).
MAX_IMAGE_PIXELS = 89_478_485

_OPEN_AT_IMPORT = Image.open  # Pillow's, unless a wrapper was installed before this import


class ImageDecodeError(ValueError):
    """An image file that cannot be read; ``path`` and ``reason`` are kept for reports."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path, self.reason = Path(path), reason
        super().__init__(f"cannot decode image {path}: {reason}")


class ImageTooLargeError(ImageDecodeError):
    """An image whose header claims more than :data:`MAX_IMAGE_PIXELS` pixels (not decoded)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(path, reason)
        self.args = (f"refusing to decode image {path}: {reason}",)


def too_large_reason(width: int | None, height: int | None, pixels: int, limit: int) -> str:
    """Why an image is refused, e.g. ``image is 9000x12000 = 108000000 pixels, over the limit of ...``."""
    size = f"{width}x{height} = " if width is not None else ""
    return f"image is {size}{pixels} pixels, over the limit of {limit} pixels (classify.base.images.MAX_IMAGE_PIXELS)"


def check_pixel_count(path: Path, width: int, height: int) -> None:
    """Raise :class:`ImageTooLargeError` when ``width * height`` exceeds :data:`MAX_IMAGE_PIXELS`."""
    pixels, limit = int(width) * int(height), MAX_IMAGE_PIXELS
    if pixels > limit:
        raise ImageTooLargeError(path, too_large_reason(width, height, pixels, limit))


def pillow_open() -> Callable[..., Image.Image]:
    """Pillow's own ``PIL.Image.open``, even after a library replaced it.

    ultralytics replaces ``PIL.Image.open`` when it is imported: for a file Pillow cannot
    identify, its wrapper tries to install and import the optional ``pi_heif`` plugin and open the
    file again, so a corrupt ``.png`` is reported as "No module named 'pi_heif'" instead of
    Pillow's reason. A wrapper is unwrapped through ``__wrapped__`` or the module-level
    ``_image_open`` in which ultralytics keeps the original.
    """
    opener = Image.open
    for _ in range(8):  # a few stacked wrappers at most
        if getattr(opener, "__module__", None) == Image.__name__:
            return opener
        inner = getattr(opener, "__wrapped__", None) or getattr(opener, "__globals__", {}).get("_image_open")
        if not callable(inner):
            break
        opener = inner
    return _OPEN_AT_IMPORT


def pillow_bomb_pixels(error: Exception) -> int | None:
    """The pixel count in Pillow's ``DecompressionBombError`` message, when it has one."""
    found = re.search(r"\((\d+) pixels\)", str(error))
    return int(found.group(1)) if found else None


def open_image(path: str | Path) -> Image.Image:
    """Open ``path`` with Pillow, reading only the header, and check its pixel count.

    Returns the not-yet-decoded image (use it as a context manager; pixels are decoded by
    ``load()``, ``convert()``...).

    Raises:
        FileNotFoundError: no file at ``path``.
        ImageTooLargeError: the header claims more than :data:`MAX_IMAGE_PIXELS` pixels; the
            message is ``refusing to decode image PATH: image is WxH = N pixels, over the limit of L pixels``.
        ImageDecodeError: the file is empty or Pillow cannot read its header; the message is
            ``cannot decode image PATH: <reason>``.
    """
    path = Path(path)
    require_file(path, "image")
    if path.stat().st_size == 0:
        raise ImageDecodeError(path, "the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():  # Pillow's warning would only announce the refusal below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = pillow_open()(path)  # not a library's wrapper, which may hide the reason
    except Image.DecompressionBombError as e:
        pixels = pillow_bomb_pixels(e)
        reason = too_large_reason(None, None, pixels, MAX_IMAGE_PIXELS) if pixels else str(e)
        raise ImageTooLargeError(path, reason) from None
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for unreadable files
        raise ImageDecodeError(path, str(e) or type(e).__name__) from None
    try:
        check_pixel_count(path, *image.size)
    except ImageTooLargeError:
        image.close()
        raise
    return image


def check_image_file(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of the image at ``path`` from its header, after :func:`open_image`'s checks.

    For decoders other than Pillow (OpenCV): call it before decoding.
    """
    with open_image(path) as image:
        return image.size
