"""Tiny generated clips for the job tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detect.inference.video import VideoWriter


def squares_clip(path: Path, frames: int = 20, size: tuple[int, int] = (64, 48)) -> Path:
    """Two bright squares moving across a dark frame, ``frames`` frames at 10 fps (any container
    :class:`VideoWriter` writes)."""
    width, height = size
    with VideoWriter(path, 10, size) as video:
        for i in range(frames):
            image = np.full((height, width, 3), 30, np.uint8)
            image[4:20, 2 + 2 * i:18 + 2 * i] = (250, 40, 40)
            image[26:44, width - 20 - i:width - 2 - i] = (40, 250, 40)
            video.write(image)
    return path
