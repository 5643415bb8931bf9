"""``detect convert SRC DST --to coco|voc|yolo``: a dataset in another format."""

from __future__ import annotations

import argparse
from pathlib import Path

from detect.cli.options import FORMATS, add_splits


def cmd_convert(args: argparse.Namespace) -> int:
    from detect.data.convert import convert

    written = convert(args.src, args.dst, to=args.to, fmt=args.source_format, splits=args.split)
    for path in written:
        print(f"wrote {path}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert a dataset between COCO, VOC and YOLO formats")
    p.add_argument("src", type=Path, help="source dataset (COCO json or folder, VOC folder, YOLO data.yaml or folder)")
    p.add_argument("dst", type=Path, help="output folder")
    p.add_argument("--to", required=True, choices=FORMATS, help="output format")
    p.add_argument("--from", dest="source_format", choices=FORMATS, help="source format (default: detected)")
    add_splits(p, "convert")
    p.set_defaults(func=cmd_convert)
