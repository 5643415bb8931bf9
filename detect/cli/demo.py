"""``detect demo``: the main job on the embedded defaults (see :func:`detect.tasks.recipe.run_demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_demo(args: argparse.Namespace) -> int:
    from detect.tasks.recipe import run_demo

    run_demo(args.out, args.run)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job on the embedded defaults: build data, train, evaluate")
    p.add_argument("--out", type=Path, default=Path("data/digit-scenes"), help="dataset folder")
    p.add_argument("--run", type=Path, default=Path("runs/demo"), help="training run folder")
    p.set_defaults(func=cmd_demo)
