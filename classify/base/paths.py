"""Files a user names on the command line or in a config: one check that says what was expected
and what came instead."""

from __future__ import annotations

from pathlib import Path

__all__ = ["require_file"]


def require_file(path: str | Path, what: str) -> Path:
    """``path`` as a ``Path`` if it is a file.

    Raises:
        IsADirectoryError: ``{what}: expected a file, got the folder PATH``.
        FileNotFoundError: ``{what} not found: PATH``.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what}: expected a file, got the folder {path}")
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path
