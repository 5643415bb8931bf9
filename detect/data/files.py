"""Small file helpers shared by the dataset writers."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from classify.base.atomic import write_text_atomic


def place_image(src: Path, dst: Path) -> None:
    """Make ``dst`` hold the image at ``src``: a hard link where possible, else a copy.

    Nothing happens when both name the same file, so converting a dataset in place never
    duplicates its images.
    """
    if not src.is_file():
        raise FileNotFoundError(f"image not found: {src}")
    if dst.exists() and os.path.samefile(src, dst):
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def write_json_atomic(path: Path, data: object) -> None:
    write_text_atomic(path, json.dumps(data, indent=1))


def format_number(value: float) -> str:
    """A coordinate as text: integers plainly, others with 12 significant digits.

    12 digits keep a round trip through text exact to well under 1e-6 pixels for any image
    size below 10^5 pixels.
    """
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.12g}"
