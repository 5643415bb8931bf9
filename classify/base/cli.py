"""An ``argparse`` parser whose "unrecognized arguments" error suggests the closest flags."""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterator
from typing import NoReturn


def _option_strings(parser: argparse.ArgumentParser) -> Iterator[str]:
    """Every flag of ``parser`` and of its sub-commands, recursively."""
    for action in parser._actions:  # argparse exposes no public accessor for this
        yield from (s for s in action.option_strings if s.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _option_strings(sub)


class SuggestingParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that answers ``--lrr`` with "did you mean --lr?".

    Abbreviated flags are refused (``allow_abbrev=False``): a prefix such as ``--freeze-backbon``
    silently meaning ``--freeze-backbone`` would start a run the user did not ask for.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

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
