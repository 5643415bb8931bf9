"""``detect list``: the registered detectors, their family and backbone."""

from __future__ import annotations

import argparse


def cmd_list(args: argparse.Namespace) -> int:
    from detect.models.registry import detector_entry, list_detectors

    for name in list_detectors():
        entry = detector_entry(name)
        notes = ", ".join(n for n, on in (("peer", entry.peer), ("inference only", not entry.trains)) if on)
        print(f"{name:45s} {entry.family:12s} {entry.backbone:25s} {notes}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("list", help="list the registered detectors").set_defaults(func=cmd_list)
