"""Repository layout rules that pytest or the design depend on."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_test_module_basenames_are_unique() -> None:
    """pytest's default (prepend) import mode imports test modules by basename: two
    ``test_x.py`` in different folders collide at collection time."""
    names = Counter(p.name for p in (ROOT / "tests").rglob("test_*.py"))
    assert [n for n, c in names.items() if c > 1] == []


def test_classify_never_imports_detect() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "classify").rglob("*.py")
                 if any(line.lstrip().startswith(("import detect", "from detect"))
                        for line in p.read_text().splitlines())]
    assert offenders == []


@pytest.mark.parametrize("package", ["detect", "classify"])
def test_command_line_parsers_load_without_torch(package: str) -> None:
    """``detect --help`` and ``classify --help`` stay instant: the verbs import torch when they run."""
    code = f"import sys, {package}.cli; {package}.cli.build_parser(); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
