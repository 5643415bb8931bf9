"""``detect validate DATASET``: every problem of a dataset, by file and object index."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from classify.base.cli import EXIT_FAILED
from detect.cli.options import add_format, add_splits


def cmd_validate(args: argparse.Namespace) -> int:
    from detect.data.validate import validate_dataset

    problems = validate_dataset(args.dataset, fmt=args.format, splits=args.split, check_images=not args.no_images,
                                report=print)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) found in {args.dataset}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{args.dataset}: no problems found")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="report every problem of a dataset by file and object index")
    p.add_argument("dataset", type=Path, help="dataset (COCO json or folder, VOC folder, YOLO data.yaml or folder)")
    add_format(p)
    add_splits(p, "check")
    p.add_argument("--no-images", action="store_true", help="skip decoding the images")
    p.set_defaults(func=cmd_validate)
