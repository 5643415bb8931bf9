"""A folder given where a file is expected says so, wherever a user names a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from classify.base.checkpoint import load_checkpoint, read_torch_file
from classify.base.config import load_config
from classify.base.images import open_image
from classify.base.paths import require_file
from classify.engine.config import TrainConfig


def test_require_file_tells_a_folder_from_a_missing_file(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    assert require_file(tmp_path / "f.txt", "notes") == tmp_path / "f.txt"
    with pytest.raises(IsADirectoryError, match=f"^notes: expected a file, got the folder {tmp_path}$"):
        require_file(tmp_path, "notes")
    with pytest.raises(FileNotFoundError, match=f"^notes not found: {tmp_path / 'none.txt'}$"):
        require_file(tmp_path / "none.txt", "notes")


@pytest.mark.parametrize("read, what", [
    (load_checkpoint, "checkpoint"),
    (read_torch_file, "weights file"),
    (lambda p: load_config(TrainConfig, p), "config file"),
    (open_image, "image"),
])
def test_a_folder_is_not_reported_as_missing(tmp_path: Path, read: object, what: str) -> None:
    with pytest.raises(IsADirectoryError, match=f"^{what}: expected a file, got the folder "):
        read(tmp_path)  # type: ignore[operator]
