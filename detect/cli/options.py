"""Flags that several ``detect`` verbs share, spelled and explained once."""

from __future__ import annotations

import argparse

#: dataset formats every verb reads and writes
FORMATS = ("coco", "voc", "yolo")


def add_format(p: argparse.ArgumentParser, what: str = "dataset format") -> None:
    p.add_argument("--format", choices=FORMATS, help=f"{what} (default: detected)")


def add_splits(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("--split", action="append", help=f"split(s) to {verb} (default: all); repeatable")
