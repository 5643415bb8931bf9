"""``detect convert``: a dataset in another format, checked before anything is written."""

from __future__ import annotations

from pathlib import Path

from detect.data.formats import available_splits, detect_format, read_split, write_split
from detect.data.problems import DatasetError
from detect.data.validate import annotation_problems


def convert(src: Path, dst: Path, to: str, fmt: str | None = None, splits: list[str] | None = None) -> list[Path]:
    """Convert every split (or ``splits``) of the dataset at ``src`` into format ``to`` at ``dst``.

    Every split is read and checked before anything is written, with ``detect validate``'s
    annotation checks (:func:`~detect.data.validate.annotation_problems`: duplicate image ids,
    boxes of non-positive size or outside their image, labels out of range); images are not decoded.

    Raises:
        DatasetError: listing every problem of every split (file and object index); nothing is written.
    """
    fmt = fmt or detect_format(Path(src))
    data, problems = [], []
    for name in splits or available_splits(src, fmt):
        split, read_problems = read_split(src, name, fmt)
        split.name = name
        problems += read_problems + annotation_problems(split)
        data.append(split)
    if problems:
        raise DatasetError(problems, max_shown=None, note=f"nothing was written to {dst}")
    return [write_split(split, dst, to) for split in data]
