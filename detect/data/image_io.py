"""Reading images into tensors, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from classify.base.images import pillow_open


def read_image(path: Path) -> torch.Tensor:
    """Decode an image file to ``uint8 Tensor[3,H,W]`` RGB.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is empty, truncated, or not an image Pillow can decode.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"image file is empty (0 bytes): {path}")
    try:
        with pillow_open()(path) as im:  # not a library's wrapper, which may hide the reason
            pixels = np.asarray(im.convert("RGB"))
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for corrupt files
        raise ValueError(f"cannot decode image {path}: {e}") from None
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)
