"""tools/bench_memory_format.py: a table row a model with both formats timed and their ratio."""

from __future__ import annotations

import re
from collections.abc import Callable
from types import ModuleType

import pytest


def test_table_has_a_row_per_model(capsys: pytest.CaptureFixture[str],
                                   load_tool: Callable[[str], ModuleType]) -> None:
    tool = load_tool("bench_memory_format")
    assert tool.main(["--models", "lenet5_relu", "lenet5", "--size", "32", "--batch", "4",
                      "--steps", "1", "--threads", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| lenet5")]
    assert len(rows) == 2
    for row in rows:
        nchw, nhwc, ratio = re.fullmatch(r"\| \w+ \| ([\d.]+) \| ([\d.]+) \| ([\d.]+)x \|", row).groups()
        assert float(nchw) > 0 and float(nhwc) > 0 and float(ratio) > 0
