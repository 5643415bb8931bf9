"""``classify`` command line: verbs end to end, user errors as one line and exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from classify import get_model
from classify.base.checkpoint import save_checkpoint
from classify.cli import build_parser, main

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "classify", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture()
def photo(tmp_path: Path) -> Path:
    """A 48x64 gray gradient with a bright square (a real edge for the filters)."""
    pixels = np.tile(np.linspace(0, 200, 64, dtype=np.uint8), (48, 1))
    pixels[16:32, 24:40] = 255
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR))
    return path


def test_summary_of_resnet18_prints_the_published_totals() -> None:
    result = run_cli("summary", "resnet18", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["total_params"] == data["trainable_params"] == 11_689_512
    assert data["macs"] == 1_814_073_344 and data["flops"] == 3_628_146_688
    assert data["input_size"] == [3, 224, 224] and data["output_shape"] == [1, 1000]
    assert [r["name"] for r in data["rows"]][:5] == [
        "body.conv1", "body.bn1", "body.relu", "body.maxpool", "body.layer1.0"]


def test_unknown_model_exits_2_with_a_suggestion() -> None:
    result = run_cli("summary", "resnet19")
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown model 'resnet19'; did you mean 'resnet18'")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_missing_image_is_a_one_line_error(tmp_path: Path) -> None:
    result = run_cli("filters", tmp_path / "nope.jpg")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == f"error: image not found: {tmp_path / 'nope.jpg'}"


def test_summary_table_and_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "resnet18", "--depth", "2"]) == 0
    table = capsys.readouterr().out
    assert "resnet18 @ [1, 3, 224, 224]" in table and "│ body.layer4  │ Sequential" in table
    assert "Total params: 11,689,512" in table
    assert "MACs: 1.81G (1,814,073,344)   FLOPs (2 x MACs): 3.63G (3,628,146,688)" in table
    assert main(["summary", "lenet5", "--format", "markdown", "--depth", "0"]) == 0
    md = capsys.readouterr().out
    assert "| C1 | Conv2d | [1, 6, 28, 28] | 156 | 156 | 117.60K | 235.20K |" in md


def test_summary_options_change_the_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "resnet18", "--input-size", "1", "64", "64", "--num-classes", "10",
                 "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    # stem 64x1x7x7 instead of 64x3x7x7 (-6,272), head 512x10+10 instead of 513,000
    assert data["total_params"] == 11_689_512 - 6_272 - 513_000 + 5_130
    assert data["output_shape"] == [1, 10]
    assert main(["summary", "resnet18", "--input-size", "3", "16", "16"]) == 2
    assert capsys.readouterr().err == (
        "error: resnet18 needs inputs of at least 32x32 px, got --input-size 3 16 16\n")


def test_list_shows_sizes_and_params(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "resnet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "input", "min", "chans", "params", "weights"]
    assert lines[1].split() == ["resnet18", "224", "32", "3", "11.69M", "-"]
    assert [line.split()[0] for line in lines[1:]] == [
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
    assert main(["list", "efficientnet_lite"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[-1] == "imagenet"
    assert main(["list", "transformer"]) == 2
    assert "no registered model name contains 'transformer'" in capsys.readouterr().err


def test_filters_writes_a_png_and_reports_responses(
        photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "f" / "grid.png"
    assert main(["filters", str(photo), "--filters", "sobel_x,laplacian4", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{photo}: 64x48 px, 2 filters"
    assert lines[1].split()[0] == "sobel_x" and lines[2].split()[0] == "laplacian4"
    assert lines[-1] == f"wrote {out}" and cv2.imread(str(out)) is not None
    assert main(["filters", str(photo), "--filters", "sobel"]) == 2
    assert "unknown filter 'sobel'; did you mean" in capsys.readouterr().err


def test_viz_from_a_name_and_from_a_checkpoint(
        photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["viz", "lenet5", "--image", str(photo), "--stage", "C3", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split() == [
        "wrote", str(tmp_path / "lenet5_filters.png"), "wrote", str(tmp_path / "lenet5_C3.png")]
    ckpt = save_checkpoint(tmp_path / "digits.pt", get_model("lenet5_relu", num_classes=4).state_dict(),
                           config={"model": "lenet5_relu", "num_classes": 4})
    assert main(["viz", str(ckpt), "--image", str(photo), "--out", str(tmp_path), "--channels", "3"]) == 0
    assert (tmp_path / "digits_filters.png").is_file() and (tmp_path / "digits_C1.png").is_file()
    capsys.readouterr()
    bad = tmp_path / "bad"
    assert main(["viz", "lenet5", "--image", str(photo), "--stage", "C9", "--out", str(bad)]) == 2
    assert not bad.exists()  # an unknown stage writes nothing
    assert capsys.readouterr().err.startswith("error: unknown stage 'C9' for LeNet5")
    assert main(["viz", "lenet5", "--image", str(tmp_path / "none.png")]) == 2
    assert capsys.readouterr().err == f"error: image not found: {tmp_path / 'none.png'}\n"


def test_bad_flag_suggests_the_closest_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["summary", "resnet18", "--deph", "2"])
    assert exit_info.value.code == 2
    assert "--deph -> did you mean --depth?" in capsys.readouterr().err


def test_parser_holds_every_verb() -> None:
    parser = build_parser()
    args = parser.parse_args(["summary", "vgg16", "--format", "markdown"])
    assert (args.model, args.format, args.depth, args.func.__name__) == ("vgg16", "markdown", 3, "cmd_summary")
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == {"list", "summary", "filters", "viz", "train", "eval"}
