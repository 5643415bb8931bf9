"""tools/cli_reference.py: docs/cli.md is what the parsers of ``classify`` and ``detect`` say."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from classify.cli import build_parser as classify_parser
from detect.cli import build_parser as detect_parser

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
STALE = "docs/cli.md is out of date: run python tools/cli_reference.py and commit the result"


@pytest.fixture
def tool(load_tool: Callable[[str], ModuleType]) -> ModuleType:
    return load_tool("cli_reference")


def _verb_names(parser: argparse.ArgumentParser, words: str) -> Iterator[str]:
    """Every command line of the tree as typed (``detect data scenes``), read from argparse."""
    yield words
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers = {id(sub): (name, sub) for name, sub in action.choices.items()}  # aliases once
            for name, sub in parsers.values():
                yield from _verb_names(sub, f"{words} {name}")


def _section(text: str, command: str) -> str:
    """The text under the heading of ``command`` up to the next command heading."""
    start = text.index(f"# `{command}`\n")
    ends = [i for i in (text.find("\n## `", start), text.find("\n### `", start)) if i >= 0]
    return text[start:min(ends, default=len(text))]


def test_docs_cli_md_is_up_to_date(tool: ModuleType) -> None:
    assert tool.render() == DOC.read_text(encoding="utf-8"), STALE


def test_every_verb_has_a_section() -> None:
    text = DOC.read_text(encoding="utf-8")
    headings = {line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")}
    names = [*_verb_names(classify_parser(), "classify"), *_verb_names(detect_parser(), "detect")]
    assert {"detect data scenes", "detect data crops", "classify train"} <= set(names)
    assert [n for n in names if f"`{n}`" not in headings] == []


@pytest.mark.parametrize(("command", "flag"), [
    ("detect eval", "--checkpoint"),
    ("detect bench", "--checkpoint"),
    ("detect train", "--time-budget-min"),
    ("detect resume", "--time-budget-min"),
    ("detect data scenes", "--num-train"),
    ("classify train", "--batch-size"),
])
def test_known_flags_are_in_their_sections(command: str, flag: str) -> None:
    assert f"| `{flag}` |" in _section(DOC.read_text(encoding="utf-8"), command)


def test_defaults_help_and_hidden_arguments(tool: ModuleType) -> None:
    """Defaults as typed, help as written (``|`` escaped, ``%%`` as argparse shows it), hidden
    arguments and ``--help`` left out, aliases listed once, nested verbs linked."""
    parser = argparse.ArgumentParser(prog="toy", description="a toy")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    verb = sub.add_parser("run", aliases=["r"], help="run it")
    verb.add_argument("source", nargs="?", help="a | b")
    verb.add_argument("--out", type=Path, default=Path("runs/toy"), help="folder (default: %(default)s)")
    verb.add_argument("--size", type=int, nargs="+", default=[1, 8], help="100%% of <size>")
    verb.add_argument("--secret", help=argparse.SUPPRESS)
    verb.add_subparsers(dest="what").add_parser("fast", help="quickly")
    text = tool.render([parser])
    run = _section(text, "toy run")
    assert "| `source` | `[source]` |  | a \\| b |" in run
    assert "| `--out` | `OUT` | `runs/toy` | folder (default: runs/toy) |" in run
    assert "| `--size` | `SIZE [SIZE ...]` | `1 8` | 100% of \\<size> |" in run
    assert "--secret" not in text and "--help" not in text and "`toy r`" not in text
    assert "[`toy run fast`](#toy-run-fast)" in text and "### `toy run fast`" in text


def test_check_exits_1_on_a_stale_file(tool: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # the output is the same from any folder and at any terminal width
    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.setattr(tool, "OUTPUT", tmp_path / "docs" / "cli.md")
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    assert tool.main(["--check"]) == 1
    assert capsys.readouterr().err == "docs/cli.md is out of date: run python tools/cli_reference.py\n"
    assert tool.main([]) == 0 and tool.main(["--check"]) == 0
    assert (tmp_path / "docs" / "cli.md").read_text(encoding="utf-8") == DOC.read_text(encoding="utf-8")
