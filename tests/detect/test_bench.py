"""``detect bench``: table, JSON and plot on tiny inputs (what is measured, not how fast)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from detect.data.build import build_digit_scenes
from detect.data.scene_config import scene_config
from detect.evaluation.timing import summarize
from detect.tasks.bench import BenchRow, markdown_table, run_bench, synthetic_images, time_interleaved

REPO = Path(__file__).resolve().parents[2]


def row(name: str, e2e_ms: float, batch: int = 1) -> BenchRow:
    stats = summarize([e2e_ms], batch)
    return BenchRow(name, "bb", 320, batch, stats, stats, 0.5, 0.25)


def test_markdown_table_ratios_are_relative_to_the_reference() -> None:
    table = markdown_table([row("a", 10.0), row("b", 25.0)], reference="a")
    lines = table.strip().splitlines()
    assert lines[0].startswith("| detector | backbone | size | batch | mAP50 | mAP50-95 | FPS | ms/img")
    assert lines[2].endswith("| 1.00x |") and lines[3].endswith("| 2.50x |")
    assert "| 0.500 | 0.250 | 100.0 | 10.0 |" in lines[2]


def test_run_bench_on_synthetic_images_writes_outputs(tmp_path: Path) -> None:
    rows = run_bench(["yolov8n"], [64], [1, 2], tmp_path, warmup=0, iterations=1, num_classes=3)
    assert [(r.detector, r.image_size, r.batch_size) for r in rows] == [("yolov8n", 64, 1), ("yolov8n", 64, 2)]
    assert all(r.map50 is None for r in rows)
    text = (tmp_path / "bench.md").read_text()
    assert text.startswith("device: CPU") and "torch 2.14.1" in text and text.count("| yolov8n |") == 2
    data = json.loads((tmp_path / "bench.json").read_text())
    assert len(data["rows"]) == 2 and data["rows"][1]["model"]["batch_size"] == 2


def test_run_bench_with_a_dataset_scores_map_and_plots(tmp_path: Path) -> None:
    build_digit_scenes(tmp_path / "scenes", scene_config("tiny"), progress=False)
    rows = run_bench(["yolov8n"], [64], [1], tmp_path / "out", dataset=tmp_path / "scenes" / "coco",
                     split="val", warmup=0, iterations=1)
    assert rows[0].map50 is not None and 0.0 <= rows[0].map50_95 <= rows[0].map50 <= 1.0
    assert (tmp_path / "out" / "bench.png").stat().st_size > 1000


def test_run_bench_times_and_scores_a_trained_checkpoint(tmp_path: Path) -> None:
    """A checkpoint written by 'detect train' is rebuilt from its config, timed at the asked size
    and scored with its own weights (the registry name with those weights would not load them)."""
    from classify.base.checkpoint import save_checkpoint
    from detect.models.loading import DetectorSpec
    from detect.models.registry import get_detector

    build_digit_scenes(tmp_path / "scenes", scene_config("tiny"), progress=False)
    peer = "tv_fasterrcnn_mobilenet_v3_large_320_fpn"
    torch.manual_seed(0)
    model = get_detector(peer, num_classes=10, image_size=64)
    ckpt = save_checkpoint(tmp_path / "best.pt", model.state_dict(), class_names=[str(d) for d in range(10)],
                           config={"detector": peer, "image_size": 64, "detector_kwargs": {}})
    rows = run_bench([DetectorSpec(checkpoint=ckpt), "yolov8n"], [64], [1], tmp_path / "out",
                     dataset=tmp_path / "scenes" / "coco", split="val", warmup=0, iterations=1)
    assert [(r.detector, r.backbone) for r in rows] == [(str(ckpt), peer), ("yolov8n", "yolov8-csp")]
    assert all(r.map50 is not None and 0.0 <= r.map50_95 <= r.map50 <= 1.0 for r in rows)
    assert f"| {ckpt} | {peer} | 64 | 1 |" in (tmp_path / "out" / "bench.md").read_text()
    with pytest.raises(ValueError, match="expected at least one detector"):
        run_bench([], [64], [1], tmp_path / "none")


@pytest.mark.parametrize("args, message", [
    (["yolov8n", "--weights", "yolov8n"], "--weights expects NAME=PATH"),
    (["yolov9n"], "unknown detector 'yolov9n'"),
    (["yolov8n", "--weights", "yolov8s=w.pt"], "--weights for yolov8s, which is not among the detectors"),
    (["--checkpoint", "absent.pt"], "checkpoint not found: absent.pt"),
])
def test_bench_cli_errors_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "detect", "bench", *args, "--out", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


class _Recorder(torch.nn.Module):
    def __init__(self, name: str, log: list[str]) -> None:
        super().__init__()
        self.name, self.log = name, log

    def forward(self, images: list[torch.Tensor]) -> list[dict]:
        self.log.append(f"{self.name}:{len(images)}")
        return []


def test_interleaved_timing_is_round_robin(tmp_path: Path) -> None:
    paths = synthetic_images(tmp_path, 2, 16)
    log: list[str] = []
    models = {"a": _Recorder("a", log), "b": _Recorder("b", log)}
    stats = time_interleaved(models, paths, "cpu", warmup=1, iterations=3)
    assert log[:2] == ["a:2", "b:2"]  # warm-up
    assert log[2:] == ["a:2", "a:2", "b:2", "b:2"] * 3  # model then e2e, detector after detector, per round
    assert all(s.iterations == 3 and s.batch_size == 2 for pair in stats.values() for s in pair)
