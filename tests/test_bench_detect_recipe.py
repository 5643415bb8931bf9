"""tools/bench_detect_recipe.py: the table and the curve drawn from finished runs' history."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture
def tool(load_tool: Callable[[str], ModuleType]) -> ModuleType:
    return load_tool("bench_detect_recipe")


def _history(run_dir: Path, rows: list[tuple[float, float, float]], final: dict | None) -> None:
    run_dir.mkdir(parents=True)
    epochs = [{"minutes": m, "test_AP50": a50, "test_AP": a} for m, a50, a in rows]
    epochs.insert(1, {"minutes": 7.0, "val_AP": 0.1})  # a row without a test score is skipped
    (run_dir / "history.json").write_text(json.dumps({"epochs": epochs, "test": final}))


def test_report_reads_curves_offsets_pretraining_and_marks(tmp_path: Path, tool: ModuleType) -> None:
    _history(tmp_path / "recipe", [(5.0, 0.5, 0.2), (20.0, 0.9, 0.5), (41.5, 0.95, 0.6)], {"AP50": 0.96, "AP": 0.61})
    _history(tmp_path / "tv", [(10.0, 0.0, 0.0), (30.0, 0.01, 0.0), (49.5, 0.02, 0.01)], None)
    (tmp_path / "bench.json").write_text(json.dumps({"pretrain_minutes": 8.0}))
    text = tool.report(tmp_path, budget=50)
    history = json.loads((tmp_path / "recipe" / "history.json").read_text())
    assert tool.curve(history, 8.0) == [(8.0, 0.0, 0.0), (13.0, 0.5, 0.2), (28.0, 0.9, 0.5),
                                                   (49.5, 0.95, 0.6)]
    lines = text.splitlines()
    assert "| 10 | 0.000 | 0.000 | 0.000 | 0.000 |" in lines  # ours still pretraining at minute 10
    assert "| 30 | 0.900 | 0.500 | 0.010 | 0.000 |" in lines
    assert "| 50 | 0.950 | 0.600 | 0.020 | 0.010 |" in lines
    assert "| final report (best.pt) | **0.960** | **0.610** | - | - |" in lines
    assert (tmp_path / "curve.png").stat().st_size > 0 and (tmp_path / "bench.md").read_text() == text


def test_a_run_that_stopped_early_has_no_value_at_later_marks(tmp_path: Path, tool: ModuleType) -> None:
    points = [(0.0, 0.0, 0.0), (10.0, 0.3, 0.1)]
    assert tool.at(points, 10) == (0.3, 0.1) and tool.at(points, 5) == (0.0, 0.0)
    assert tool.at(points, 20) is None


def test_the_final_test_report_ends_the_curve_when_the_last_row_has_no_test_score(tool: ModuleType) -> None:
    epochs = [{"minutes": 7.8, "test_AP50": 0.45, "test_AP": 0.2}, {"minutes": 49.4, "val_AP": 0.5}]
    history = {"epochs": epochs, "test": {"AP50": 0.75, "AP": 0.47}}
    assert tool.curve(history, 9.0)[-1] == (58.4, 0.75, 0.47)
    assert tool.at(tool.curve(history, 9.0), 60) == (0.75, 0.47)
