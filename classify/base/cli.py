"""What every command line of the project shares: the parser, the flag spelling, and how a verb
runs and fails.

* :class:`SuggestingParser` answers an unknown flag with the closest known one, refuses
  abbreviations, and takes every flag in both spellings: ``--image-size`` (the documented one)
  and ``--image_size``.
* :func:`run_command` runs one verb: a user error ends in ``error: ...`` on stderr and exit code
  2 (:data:`EXIT_USAGE`), never a traceback; :class:`ProblemsFound` (every problem of a dataset,
  one a line) and a diverged training run end with exit code 1 (:data:`EXIT_FAILED`).
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import NoReturn

__all__ = ["EXIT_FAILED", "EXIT_USAGE", "ProblemsFound", "SuggestingParser", "command_parser", "run_command",
           "run_main"]

EXIT_FAILED = 1
EXIT_USAGE = 2
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError,
               IsADirectoryError, PermissionError)


class ProblemsFound(ValueError):
    """A user error whose message lists several problems, one a line (all of it is printed)."""


def _option_strings(parser: argparse.ArgumentParser) -> Iterator[str]:
    """Every flag of ``parser`` and of its sub-commands, recursively."""
    for action in parser._actions:  # argparse exposes no public accessor for this
        yield from (s for s in action.option_strings if s.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _option_strings(sub)


class SuggestingParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that answers ``--lrr`` with "did you mean --lr?" and reads
    ``--a_b`` as ``--a-b`` (and the reverse) when only the other spelling is a flag.

    Abbreviated flags are refused (``allow_abbrev=False``): a prefix such as ``--freeze-backbon``
    silently meaning ``--freeze-backbone`` would start a run the user did not ask for.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args: Sequence[str] | None = None,
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args([self._respelled(a) for a in args], namespace)

    def _respelled(self, arg: str) -> str:
        """``--a_b[=v]`` as ``--a-b[=v]`` (or the reverse) when only that spelling is a flag here."""
        if not arg.startswith("--") or arg == "--":
            return arg
        flag, sep, value = arg.partition("=")
        known = self._option_string_actions
        if flag in known:
            return arg
        for other in (flag[:2] + flag[2:].replace("_", "-"), flag[:2] + flag[2:].replace("-", "_")):
            if other in known:
                return other + sep + value
        return arg

    def error(self, message: str) -> NoReturn:
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            known = sorted(set(_option_strings(self)))
            hints = []
            for arg in message[len(prefix):].split():
                flag = arg.split("=", 1)[0]
                close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6) if flag.startswith("-") else []
                if close:
                    hints.append(f"{flag} -> did you mean {close[0]}?")
            if hints:
                message += " (" + "; ".join(hints) + ")"
        super().error(message)


def _message(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text if isinstance(err, ProblemsFound) else text.splitlines()[0]


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run one verb, turning user errors into ``error: ...`` on stderr and a non-zero exit code."""
    try:
        return func(args)
    except FloatingPointError as err:  # raised by the trainers on a non-finite loss
        print(f"error: training diverged: {err}", file=sys.stderr)
        return EXIT_FAILED
    except USER_ERRORS as err:
        print(f"error: {_message(err)}", file=sys.stderr)
        return EXIT_FAILED if isinstance(err, ProblemsFound) else EXIT_USAGE
    except BrokenPipeError:  # the reader went away (`detect list | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130



def command_parser(prog: str, description: str, verbs: Sequence[ModuleType]) -> SuggestingParser:
    """The parser of a command: one sub-command per verb module, each adding itself with
    ``add_parser(sub)`` and storing its function in ``args.func``."""
    parser = SuggestingParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for verb in verbs:
        verb.add_parser(sub)
    return parser


def run_main(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen verb with :func:`run_command`; returns the exit code."""
    args = parser.parse_args(argv)
    return run_command(args.func, args)
