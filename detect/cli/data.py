"""``detect data scenes|crops``: build the digit-scenes benchmark; cut a dataset's objects into an
image folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from detect.cli.options import FORMATS


def cmd_scenes(args: argparse.Namespace) -> int:
    from classify.base.config import config_from_args
    from detect.data.build import build_digit_scenes
    from detect.data.scene_config import SceneConfig, scene_config

    config = config_from_args(SceneConfig, args, base=scene_config(args.preset))
    build_digit_scenes(args.out, config, force=args.force, workers=args.workers)
    return 0


def cmd_crops(args: argparse.Namespace) -> int:
    from detect.data.crops import crop_statistics, export_crops
    from detect.data.formats import available_splits, load_split

    splits = args.split or available_splits(args.data, args.format)
    summaries = [export_crops(load_split(args.data, name, args.format), args.out, size=args.size,
                              context=args.context, mode=args.mode, negatives=args.negatives,
                              jitter=args.jitter, partial=args.partial, seed=args.seed, overwrite=args.force)
                 for name in splits]
    print(crop_statistics(summaries))
    for s in summaries:
        print(f"wrote {s.total} crops to {s.folder}" + (f" (skipped {s.skipped} tiny objects)" if s.skipped else ""))
    return 0


def _add_scenes(data: argparse._SubParsersAction) -> None:
    from classify.base.config import add_config_arguments
    from detect.data.scene_config import SceneConfig

    p = data.add_parser("scenes", help="build the digit-scenes detection benchmark (COCO, VOC and YOLO)",
                        description="Build the digit-scenes benchmark. The preset's values can be "
                        "overridden by a YAML file (--config) and then by the flags below.")
    p.add_argument("--out", type=Path, default=Path("data/digit-scenes"),
                   help="output folder: coco/, voc/, yolo/ and stats.json (default: data/digit-scenes)")
    p.add_argument("--preset", default="default", help="size preset: tiny, default or large")
    p.add_argument("--force", action="store_true", help="rebuild even if the dataset is up to date")
    p.add_argument("--workers", type=int, help="rendering processes (default: up to 2)")
    add_config_arguments(p, SceneConfig)
    p.set_defaults(func=cmd_scenes)


def _add_crops(data: argparse._SubParsersAction) -> None:
    p = data.add_parser("crops", help="cut every object into an image folder (for 'classify train --data')",
                        description="Cut every object of a detection dataset into OUT/<split>/<class>/*.png, "
                        "the image-folder layout 'classify train --data OUT' reads.")
    p.add_argument("data", type=Path, help="dataset (COCO json or folder, VOC folder, YOLO data.yaml or folder)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--format", choices=FORMATS, help="dataset format (default: detected)")
    p.add_argument("--split", action="append", help="split(s) to cut (default: all); repeatable")
    p.add_argument("--size", type=int, default=64, help="side of the square crops in pixels (default: 64)")
    p.add_argument("--context", type=float, default=0.15, help="margin around each box, as a fraction of "
                   "its side (default: 0.15)")
    p.add_argument("--mode", choices=["square", "warp"], default="square", help="square: keep the aspect "
                   "ratio; warp: stretch the box to the square, R-CNN style (default: square)")
    p.add_argument("--negatives", type=int, default=0, metavar="N", help="also cut N background windows "
                   "an image (object-sized, on strokes and edges, covering almost no object) into a "
                   "'background' class (default: 0)")
    p.add_argument("--jitter", type=int, default=0, metavar="N", help="also cut N copies of each object around "
                   "a randomly moved box (IoU >= 0.6 with it: what a detector's boxes look like; default: 0)")
    p.add_argument("--partial", type=int, default=0, metavar="N", help="also cut N windows an image around part "
                   "of an object (IoU 0.1-0.4) into the 'background' class (default: 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random windows and boxes (default: 0)")
    p.add_argument("--force", action="store_true", help="replace existing split folders")
    p.set_defaults(func=cmd_crops)


def add_parser(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="build datasets").add_subparsers(dest="data_command", required=True,
                                                                        metavar="WHAT")
    _add_scenes(data)
    _add_crops(data)
