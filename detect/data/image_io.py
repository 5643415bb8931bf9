"""Reading images into tensors, with errors that name the file.

Every decode goes through :func:`classify.base.images.open_image`, which refuses an image of
more than ``classify.base.images.MAX_IMAGE_PIXELS`` pixels from its header, before decoding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from classify.base.images import ImageDecodeError, ImageTooLargeError, open_image

__all__ = ["ImageDecodeError", "ImageTooLargeError", "read_image", "read_rgb"]


def read_rgb(path: Path) -> np.ndarray:
    """Decode an image file to a writable ``uint8[H, W, 3]`` RGB array.

    Raises:
        FileNotFoundError: no file at ``path``.
        ImageTooLargeError: the header claims more pixels than the limit (nothing is decoded).
        ImageDecodeError: (a ``ValueError``) the file is empty, truncated, or not an image Pillow
            can decode; the message is ``cannot decode image PATH: <reason>``.
    """
    path = Path(path)
    with open_image(path) as im:
        try:
            return np.array(im.convert("RGB"))
        except Exception as e:  # noqa: BLE001 - Pillow raises many types for corrupt files
            raise ImageDecodeError(path, str(e) or type(e).__name__) from None


def read_image(path: Path) -> torch.Tensor:
    """Decode an image file to ``uint8 Tensor[3,H,W]`` RGB.

    Raises:
        FileNotFoundError: no file at ``path``.
        ImageTooLargeError: the header claims more pixels than the limit: ``refusing to decode
            image PATH: image is WxH = N pixels, over the limit of L pixels`` (nothing is decoded).
        ImageDecodeError: (a ``ValueError``) the file is empty, truncated, or not an image Pillow
            can decode; the message is ``cannot decode image PATH: <reason>``.
    """
    return torch.from_numpy(read_rgb(path)).permute(2, 0, 1)
