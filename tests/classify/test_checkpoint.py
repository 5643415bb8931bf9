"""Checkpoints: atomic round trip, weights_only loading, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from classify.base.checkpoint import load_checkpoint, save_checkpoint


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "sub" / "last.pt", model.state_dict(), config={"lr": 0.1, "size": [3, 2]},
                           class_names=["a", "b"], metrics={"top1": 0.5},
                           extra={"epoch": 3, "optimizer": opt.state_dict()})
    ckpt = load_checkpoint(path)
    assert ckpt.class_names == ["a", "b"] and ckpt.metrics == {"top1": 0.5} and ckpt.config["size"] == [3, 2]
    assert ckpt.extra["epoch"] == 3 and set(ckpt.versions) == {"torch", "torchvision", "python"}
    for k, v in model.state_dict().items():
        assert torch.equal(ckpt.model[k], v)
    opt2 = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt2.load_state_dict(ckpt.extra["optimizer"])
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temporary file left behind


def test_bad_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="expected a detect-pipeline-checkpoint file.*state_dict"):
        load_checkpoint(tmp_path / "foreign.pt")
