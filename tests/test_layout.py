"""Repository layout rules that pytest or the design depend on, and the layering of the packages.

The layers (docs/design.md), lowest first; a module imports modules of its own layer package or
of a lower layer, never of a higher one, and never of another package of the same layer::

    classify.base                          config, CLI helpers, checkpoints, device, atomic I/O,
                                           training primitives (optimiser, schedule, EMA, RNG, history)
    classify.models | classify.data        the backbone zoo and its registry | classification data
    classify.engine | classify.inspect     classifier training | summaries, filters, visualisation
    classify.cli
    detect.structures | box_ops | offline  annotations, the one box convention, ultralytics' offline setup
    detect.data                            formats, datasets, transforms, the digit scenes
    detect.models | detect.evaluation      detectors and their registry | COCO / VOC scoring and reports
    detect.export                          ONNX / TorchScript files: writing them, running them as detectors
    detect.inference                       Predictor, the one predict loop, video, tracking, model evaluation
    detect.engine                          the one training loop
    detect.tasks                           whole jobs: evaluate, bench, recipe, demo
    detect.serve                           the HTTP service (FastAPI): models, batching, jobs, web page
    detect.cli                             the command line (``detect serve`` starts the service)

Every import counts, those inside functions included.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LAYERS: tuple[tuple[str, ...], ...] = (
    ("classify.base",),
    ("classify.models", "classify.data"),
    ("classify.engine", "classify.inspect"),
    ("classify.cli",),
    ("detect.structures", "detect.box_ops", "detect.offline"),
    ("detect.data",),
    ("detect.models", "detect.evaluation"),
    ("detect.export",),
    ("detect.inference",),
    ("detect.engine",),
    ("detect.tasks",),
    ("detect.serve",),
    ("detect.cli",),
)
#: package facades (lazy public names, ``python -m``): above every layer, imported by none
FACADES = ("classify", "classify.__main__", "detect", "detect.__main__")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in ("classify", "detect") for p in (ROOT / package).rglob("*.py")}


def _imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports anywhere in its file (``from pkg import module`` included)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imported(name, path, modules) for name, path in modules.items()}


def _layer(module: str) -> tuple[int, str]:
    """(rank, layer package) of ``module``."""
    for rank, packages in enumerate(LAYERS):
        for package in packages:
            if module == package or module.startswith(package + "."):
                return rank, package
    if module in FACADES:
        return len(LAYERS), module
    raise AssertionError(f"{module} belongs to no layer of tests/test_layout.py: add its package to LAYERS")


def test_test_module_basenames_are_unique() -> None:
    """pytest's default (prepend) import mode imports test modules by basename: two
    ``test_x.py`` in different folders collide at collection time."""
    names = Counter(p.name for p in (ROOT / "tests").rglob("test_*.py"))
    assert [n for n, c in names.items() if c > 1] == []


def test_every_module_belongs_to_a_layer() -> None:
    for module in _modules():
        _layer(module)


def test_imports_only_go_down_the_layers() -> None:
    upward = []
    for module, imports in sorted(_graph().items()):
        rank, package = _layer(module)
        for target in sorted(imports):
            target_rank, target_package = _layer(target)
            if target_package != package and target_rank >= rank:
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_no_import_cycles() -> None:
    graph = _graph()
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(path[path.index(nxt):] + [node, nxt]) if nxt in path else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, path + [node])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    assert cycles == []


def test_the_detector_registry_imports_no_model() -> None:
    """Detectors register themselves; the registry imports them by name on first use."""
    assert {m for m in _graph()["detect.models.registry"] if m.startswith("detect.")} == set()


def test_classify_never_imports_detect() -> None:
    offenders = [f"{m} -> {t}" for m, imports in _graph().items() if m.startswith("classify")
                 for t in imports if t.startswith("detect")]
    assert offenders == []


@pytest.mark.parametrize("package", ["detect", "classify"])
def test_command_line_parsers_load_without_torch(package: str) -> None:
    """``detect --help`` and ``classify --help`` stay instant: the verbs import torch when they run."""
    code = f"import sys, {package}.cli; {package}.cli.build_parser(); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
