"""Write ``docs/cli.md``, the command-line reference of ``classify`` and ``detect``, from their parsers.

    python tools/cli_reference.py           # (re)write docs/cli.md
    python tools/cli_reference.py --check   # exit 1 when docs/cli.md is not what would be written

Everything comes from the argparse parsers that ``classify.cli.build_parser()`` and
``detect.cli.build_parser()`` assemble: one section a verb (nested verbs such as ``detect data
scenes`` included) with its help, its description, a synopsis and one table an argument group.
Arguments hidden with ``argparse.SUPPRESS`` and ``-h/--help`` are left out. The text depends on
the parsers only: not on the terminal width, the current directory or the machine (defaults are
written as they would be typed: ``runs/eval``, ``1 8``). Building the parsers imports no torch.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePath
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

OUTPUT = ROOT / "docs" / "cli.md"
COMMAND = "python tools/cli_reference.py"
#: the command lines documented, in this order
PROGRAMS = ("classify.cli", "detect.cli")
HEADER = f"""\
# Command-line reference

Generated from the argparse parsers of `classify` and `detect` by `tools/cli_reference.py`; do
not edit it by hand. Regenerate it with `{COMMAND}` (or `make docs`): the test suite
fails when it is out of date.

Every flag is also accepted with underscores (`--image_size` for `--image-size`); abbreviated
flags are refused. In a `config (...)` group each flag sets one key of that configuration and
overrides the same key of the YAML preset given with `--config`; its help ends with the type, the
accepted values and the built-in default, so the default column is left empty there."""

_CODE_SPAN = re.compile(r"(`+).+?\1")
# what Markdown would not show as written, outside code spans: a backslash, "<" that opens an HTML
# tag, "*" not between spaces, "_" not inside a word
_MARKDOWN = re.compile(r"\\|<(?=[A-Za-z/!?])|(?<!\s)\*|\*(?!\s)|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


class Command(NamedTuple):
    """One parser of the tree: ``words`` as typed (``("detect", "data", "scenes")``)."""

    words: tuple[str, ...]
    parser: argparse.ArgumentParser
    help: str | None

    @property
    def name(self) -> str:
        return " ".join(self.words)

    @property
    def anchor(self) -> str:
        """The id GitHub gives the section heading (its text lower-cased, spaces as hyphens)."""
        return re.sub(r"[^\w\- ]", "", self.name.lower()).replace(" ", "-")


# ----------------------------------------------------------------------------- walking the parsers


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    """The parser's verbs, if it has any."""
    found = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return found[0] if found else None


def _verbs(action: argparse._SubParsersAction) -> Iterator[tuple[str, argparse.ArgumentParser, str | None]]:
    """(name, parser, help) of every visible verb in the order they were added; aliases once."""
    helps = {choice.dest: choice.help for choice in action._choices_actions}
    seen: set[int] = set()
    for name, parser in action.choices.items():
        if id(parser) not in seen and helps.get(name) is not argparse.SUPPRESS:
            seen.add(id(parser))
            yield name, parser, helps.get(name)


def commands(parser: argparse.ArgumentParser, words: tuple[str, ...] | None = None,
             help: str | None = None) -> Iterator[Command]:
    """``parser`` and every verb under it, depth first, as :class:`Command`."""
    command = Command(words or (parser.prog,), parser, help)
    yield command
    sub = _subcommands(parser)
    for name, verb, verb_help in _verbs(sub) if sub else ():
        yield from commands(verb, command.words + (name,), verb_help)


def _visible(actions: Sequence[argparse.Action]) -> list[argparse.Action]:
    """The documented arguments: no ``-h/--help``, nothing hidden, no verb list."""
    hidden = (argparse._HelpAction, argparse._SubParsersAction)
    return [a for a in actions if a.help is not argparse.SUPPRESS and not isinstance(a, hidden)]


# ----------------------------------------------------------------------------- text of one argument


def _text(text: str, prog: str) -> str:
    """A description or epilog as ``--help`` shows it: ``%(prog)s`` filled in, one line."""
    if "%(prog)" in text:
        text = text % {"prog": prog}
    return " ".join(text.split())


def _help(action: argparse.Action, prog: str) -> str:
    """The help as ``--help`` shows it: ``%(default)s`` and the like filled in, ``%%`` as ``%``."""
    text = action.help or ""
    if "%" in text:
        params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
        params["prog"] = prog
        if params.get("choices") is not None:
            params["choices"] = ", ".join(map(str, _ordered(params["choices"])))
        text = text % params
    return " ".join(text.split())


def _ordered(choices: object) -> list[object]:
    """Choices in their own order; a set (no stable order) sorted."""
    return sorted(choices, key=str) if isinstance(choices, (set, frozenset)) else list(choices)


def _metavars(action: argparse.Action, count: int) -> tuple[str, ...]:
    """The placeholder(s) of the action's values, as argparse names them."""
    if action.metavar is not None:
        metavar = action.metavar
    elif action.choices is not None:
        metavar = "{" + ",".join(map(str, _ordered(action.choices))) + "}"
    else:
        metavar = action.dest.upper() if action.option_strings else action.dest
    return tuple(metavar) if isinstance(metavar, tuple) else (metavar,) * count


def _typed_values(action: argparse.Action) -> str:
    """How the values are typed: ``N``, ``[N]``, ``N [N ...]``, ``C H W``; empty for a switch."""
    nargs = action.nargs
    if nargs == 0:
        return ""
    if isinstance(nargs, int):
        return " ".join(_metavars(action, nargs))
    one = _metavars(action, 1)[0]
    forms = {None: one, "?": f"[{one}]", "*": f"[{one} ...]", "+": f"{one} [{one} ...]",
             argparse.PARSER: f"{one} ...", argparse.REMAINDER: "..."}
    return forms[nargs]


def _as_typed(value: object) -> str:
    """A default as it would be typed: paths with ``/``, lists space separated."""
    if isinstance(value, (list, tuple)):
        return " ".join(map(_as_typed, value))
    if isinstance(value, PurePath):
        return value.as_posix()
    return str(value)


def _default(action: argparse.Action) -> str:
    """The default cell: ``required``, the default as typed, or empty (none, or a switch)."""
    if action.required and action.option_strings:
        return "required"
    value = action.default
    if action.nargs == 0 or value is None or value is argparse.SUPPRESS or value in ("", []):
        return ""
    return _code(_as_typed(value))


# ----------------------------------------------------------------------------- Markdown


def _code(text: str) -> str:
    """``text`` as a Markdown code span."""
    if not text:
        return ""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _inline(text: str) -> str:
    """Plain text as Markdown that shows it as written (code spans kept as they are)."""
    pieces, start = [], 0
    for span in _CODE_SPAN.finditer(text):
        pieces += [_MARKDOWN.sub(r"\\\g<0>", text[start:span.start()]), span.group(0)]
        start = span.end()
    pieces.append(_MARKDOWN.sub(r"\\\g<0>", text[start:]))
    return "".join(pieces)


def _row(cells: Sequence[str]) -> str:
    """One table row; ``|`` inside a cell escaped."""
    return "| " + " | ".join(cell.replace("|", r"\|") for cell in cells) + " |"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table and the blank line after it."""
    return [_row(header), _row(["---"] * len(header)), *map(_row, rows), ""]


# ----------------------------------------------------------------------------- one section


def _synopsis(command: Command) -> str:
    """The command line as typed: positionals, required flags, then ``[options]``."""
    actions = _visible(command.parser._actions)
    sub = _subcommands(command.parser)
    parts = [command.name] + [_typed_values(a) for a in actions if not a.option_strings]
    if sub is not None:
        parts.append(_typed_values(sub))
    grouped: set[int] = set()
    for group in command.parser._mutually_exclusive_groups:
        members = _visible(group._group_actions)
        if group.required and members:
            parts.append("(" + " | ".join(_flag_usage(a) for a in members) + ")")
            grouped.update(map(id, members))
    optional = [a for a in actions if a.option_strings and id(a) not in grouped]
    parts += [_flag_usage(a) for a in optional if a.required]
    return " ".join(parts + (["[options]"] if any(not a.required for a in optional) else []))


def _flag_usage(action: argparse.Action) -> str:
    """A flag as typed in a synopsis: ``--to {coco,voc,yolo}``."""
    return " ".join(filter(None, [action.option_strings[-1], _typed_values(action)]))


def _flags(action: argparse.Action) -> str:
    """The argument cell: every flag spelling, or a positional's name."""
    if action.option_strings:
        return ", ".join(map(_code, action.option_strings))
    return _code(" ".join(_metavars(action, 1)))


def _argument_rows(actions: Sequence[argparse.Action], prog: str) -> list[list[str]]:
    """One row an argument, positionals first."""
    ordered = sorted(actions, key=lambda a: bool(a.option_strings))  # stable: keeps their order
    return [[_flags(a), _value(a), _default(a), _inline(_help(a, prog))] for a in ordered]


def _value(action: argparse.Action) -> str:
    """The value cell; empty for a switch and for a positional typed as its own name."""
    typed = _typed_values(action)
    return "" if not action.option_strings and typed == " ".join(_metavars(action, 1)) else _code(typed)


def _groups(parser: argparse.ArgumentParser) -> Iterator[tuple[str, str | None, list[argparse.Action]]]:
    """(title, description, arguments) of each table: positionals and options together first,
    then one an argument group (e.g. ``config (DetectTrainConfig)``)."""
    builtin = (parser._positionals, parser._optionals)
    yield "Arguments", None, _visible([a for g in builtin for a in g._group_actions])
    for group in parser._action_groups:
        if group not in builtin:
            yield group.title or "Arguments", group.description, _visible(group._group_actions)


def _argument_tables(command: Command) -> list[str]:
    """One sub-heading and table a group that has documented arguments."""
    lines = []
    for title, description, actions in _groups(command.parser):
        if actions:
            lines += [f"#### {_inline(title)}", ""]
            lines += [_inline(_text(description, command.name)), ""] if description else []
            header = ("argument", "value", "default", "help")
            lines += _table(header, _argument_rows(actions, command.name))
    return lines


def _exclusive_notes(parser: argparse.ArgumentParser) -> list[str]:
    """One sentence a group of mutually exclusive flags."""
    lines = []
    for group in parser._mutually_exclusive_groups:
        flags = ", ".join(_code(a.option_strings[-1]) for a in _visible(group._group_actions))
        if flags:
            rule = "Exactly one of {} is required." if group.required else "At most one of {} may be given."
            lines += [rule.format(flags), ""]
    return lines


def _verb_table(command: Command, every: dict[tuple[str, ...], Command]) -> list[str]:
    """The verbs of ``command``, linked to their sections."""
    sub = _subcommands(command.parser)
    if sub is None:
        return []
    rows = []
    for name, _, verb_help in _verbs(sub):
        verb = every[command.words + (name,)]
        rows.append([f"[`{verb.name}`](#{verb.anchor})", _inline(_text(verb_help or "", verb.name))])
    return ["#### Commands", "", *_table(("command", "help"), rows)]


def _paragraphs(command: Command) -> list[str]:
    """The one-line help given to the verb, its description and epilog, as paragraphs."""
    parser = command.parser
    texts = [command.help, parser.description, parser.epilog]
    lines = []
    for text in dict.fromkeys(_text(t, command.name) for t in texts if t):  # no repeats
        lines += [_inline(text), ""]
    return lines


def section(command: Command, every: dict[tuple[str, ...], Command]) -> list[str]:
    """The lines of one command's section (``every``: all commands by words, for links)."""
    level = "##" if len(command.words) == 1 else "###"
    lines = [f"{level} `{command.name}`", "", *_paragraphs(command)]
    lines += ["```text", _synopsis(command), "```", ""]
    lines += _exclusive_notes(command.parser)
    return lines + _verb_table(command, every) + _argument_tables(command)


# ----------------------------------------------------------------------------- the document


def _contents(every: Sequence[Command]) -> list[str]:
    """The table of contents: one link a command, nested verbs indented."""
    lines = ["## Contents", ""]
    for command in every:
        lines.append("  " * (len(command.words) - 1) + f"- [`{command.name}`](#{command.anchor})")
    return lines + [""]


def default_parsers() -> list[argparse.ArgumentParser]:
    """The parsers documented: ``build_parser()`` of each module of :data:`PROGRAMS`."""
    return [importlib.import_module(name).build_parser() for name in PROGRAMS]


def render(parsers: Sequence[argparse.ArgumentParser] | None = None) -> str:
    """The whole reference as Markdown (``parsers``: default :func:`default_parsers`)."""
    every = [c for p in (default_parsers() if parsers is None else parsers) for c in commands(p)]
    by_words = {c.words: c for c in every}
    lines = [HEADER, "", *_contents(every)]
    for command in every:
        lines += section(command, by_words)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write :data:`OUTPUT`, or with ``--check`` only compare it; the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 if {OUTPUT.relative_to(ROOT)} is not what would be written")
    args = parser.parse_args(argv)
    text = render()
    name = OUTPUT.relative_to(ROOT).as_posix()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.is_file() else None
        if current != text:
            print(f"{name} is out of date: run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8", newline="\n")
    print(f"wrote {name} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
