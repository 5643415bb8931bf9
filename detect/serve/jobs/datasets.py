"""Datasets an evaluation job may name: paths relative to the server's data root, confined to it.

A client names a dataset as a relative path (``digit-scenes/coco``); the server resolves it under
its ``data_root`` and refuses anything that could reach outside: an absolute path, a ``..``
component, or a path whose symbolic links resolve outside the root (the path is resolved first,
then checked with ``is_relative_to``). Messages never show the server's own folders.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

from detect.data.formats import available_splits, detect_format

EXPECTED = "a dataset path relative to the server's data root, e.g. 'digit-scenes/coco'"


class DatasetPathError(ValueError):
    """A dataset name that is refused or names nothing. ``expected`` and ``got`` say why."""

    def __init__(self, message: str, got: str, expected: str = EXPECTED) -> None:
        super().__init__(message)
        self.expected, self.got = expected, got


def resolve_dataset(data_root: Path, name: str) -> Path:
    """The dataset ``name`` (relative, POSIX separators) under ``data_root``, resolved.

    Raises:
        DatasetPathError: an empty name, an absolute path, a ``..`` component, a path that
            resolves outside ``data_root`` (a symbolic link), or nothing at that path.
    """
    if not name or not name.strip() or "\x00" in name:
        raise DatasetPathError("the dataset path is empty or not text", got=repr(name))
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() or PureWindowsPath(name).drive:
        raise DatasetPathError(f"the dataset path {name!r} is absolute", got=name)
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        raise DatasetPathError(f"the dataset path {name!r} climbs out with '..'", got=name)
    root = Path(data_root).resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise DatasetPathError(f"the dataset path {name!r} leads outside the data root (through a symbolic link)",
                               got=name)
    if not path.exists():
        raise DatasetPathError(f"no dataset {name!r} under the data root", got=name)
    return path


def check_split(dataset: Path, name: str, split: str | None) -> str | None:
    """``split`` if the dataset at ``dataset`` (called ``name`` in messages) has it (None: the
    evaluation's default split).

    Raises:
        DatasetPathError: not a dataset (COCO, VOC, YOLO) or no such split (listing those it has).
    """
    try:
        fmt = detect_format(dataset)
        splits = available_splits(dataset, fmt)
    except (ValueError, OSError) as exc:
        reason = str(exc).replace(str(dataset), repr(name))  # the server's folders stay private
        raise DatasetPathError(f"{name!r} is not a dataset this service reads ({reason})", got=name,
                               expected="a COCO, VOC or YOLO dataset") from None
    if split is not None and split not in splits:
        raise DatasetPathError(f"the {fmt} dataset {name!r} has no split {split!r}", got=split,
                               expected=f"one of {', '.join(splits)}")
    return split
