"""``classify train`` / ``classify eval`` through a parser built from ``add_training_parsers``."""

from __future__ import annotations

from pathlib import Path

import pytest

from classify.base.checkpoint import load_checkpoint
from classify.base.config import config_from_args, load_config
from classify.cli import build_parser, main
from classify.engine.config import TrainConfig

PRESETS = Path(__file__).resolve().parents[2] / "configs" / "classify"
TINY = ["--data", "mnist5k", "--model", "lenet5_relu", "--subset", "20", "--test-subset", "5",
        "--epochs", "1", "--batch-size", "20", "--optimizer", "adam", "--lr", "0.003",
        "--fit-mode", "pad", "--progress", "false"]


def _run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


def test_hyphen_and_underscore_flags_are_the_same() -> None:
    parser = build_parser()
    a = parser.parse_args(["train", "--freeze-backbone", "--backbone-lr-scale", "0.1", "--subset", "3"])
    b = parser.parse_args(["train", "--freeze_backbone", "true", "--backbone_lr_scale", "0.1",
                           "--subset", "3"])
    config_a, config_b = config_from_args(TrainConfig, a), config_from_args(TrainConfig, b)
    assert config_a == config_b
    assert (config_a.freeze_backbone, config_a.backbone_lr_scale, config_a.subset) == (True, 0.1, 3)


def test_train_then_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["train", *TINY, "--output", str(tmp_path), "--name", "cli"]) == 0
    out = capsys.readouterr().out
    assert "test top-1 " in out and f"run folder: {tmp_path / 'cli'}" in out
    best = tmp_path / "cli" / "best.pt"
    top1 = load_checkpoint(best).metrics["val_top1"]
    plot = tmp_path / "cm.png"
    assert _run(["eval", str(best), "--subset", "5", "--plot", str(plot), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"top-1 {100 * top1:.2f}%" in out and "(test, 50 images)" in out
    assert plot.read_bytes()[:4] == b"\x89PNG"
    # the same digits at 20 px (OpenCV's digits.png) have the same classes
    assert _run(["eval", str(best), "--data", "digits", "--subset", "2"]) == 0
    assert (tmp_path / "cli" / "confusion_best_digits_test.png").is_file()
    # resume from the run folder with more epochs
    assert _run(["train", "--resume", str(tmp_path / "cli"), "--epochs", "2"]) == 0
    assert load_checkpoint(tmp_path / "cli" / "last.pt").extra["epoch"] == 2


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "fashon"], "unknown dataset 'fashon'; did you mean 'fashion'?"),
    (["train", "--model", "resnet19"], "did you mean 'resnet18'"),
    (["train", "--lr", "-1"], "--lr"),
    (["eval", "missing.pt"], "checkpoint not found: missing.pt"),
])
def test_user_errors_are_one_line(argv: list[str], message: str,
                                  capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main([*argv, *(["--output", str(tmp_path), "--epochs", "1"] if argv[0] == "train" else [])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_resume_with_changed_setting_is_an_error(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", *TINY, "--output", str(tmp_path), "--name", "r"]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "r" / "last.pt"), "--lr", "0.1"]) == 2
    assert "cannot resume with a changed lr: 0.003 -> 0.1" in capsys.readouterr().err


def test_unknown_flag_suggests_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--freeze-bakbone"])
    assert "did you mean --freeze-backbone?" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted(PRESETS.glob("classify_*.yaml")), ids=lambda p: p.stem)
def test_presets_load_with_overrides(path: Path) -> None:
    config = load_config(TrainConfig, path, {"epochs": "1", "subset": "2"})
    assert config.epochs == 1 and config.subset == 2
    assert config.output.parts[0] == "runs", "presets write under runs/, which git ignores"
