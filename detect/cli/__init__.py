"""``detect`` command line: data building, conversion, validation (more verbs in later issues).

Every user error ends in one ``error: ...`` line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from classify.base.cli import SuggestingParser
from detect.data.problems import DatasetError
from detect.cli.evaluate import add_eval_parser
from detect.cli.train import add_train_parser

EXIT_PROBLEMS = 1
EXIT_USAGE = 2


def cmd_convert(args: argparse.Namespace) -> int:
    from detect.data.formats import convert

    written = convert(args.src, args.dst, to=args.to, fmt=args.source_format, splits=args.split)
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from detect.data.validate import validate_dataset

    problems = validate_dataset(args.dataset, fmt=args.format, splits=args.split, check_images=not args.no_images,
                                report=print)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) found in {args.dataset}", file=sys.stderr)
        return EXIT_PROBLEMS
    print(f"{args.dataset}: no problems found")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from detect.tasks.bench import run_bench

    weights = dict(_parse_weights(item) for item in args.weights or [])
    run_bench(args.detectors, args.image_size, args.batch_size, args.out, dataset=args.dataset, split=args.split,
              threads=args.threads, device=args.device, warmup=args.warmup, iterations=args.iterations,
              weights=weights, max_images=args.max_images)
    return 0


def _parse_weights(item: str) -> tuple[str, Path]:
    name, sep, path = item.partition("=")
    if not sep or not name or not path:
        raise ValueError(f"--weights expects NAME=PATH, got {item!r}")
    return name, Path(path)


def _add_bench_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="latency, FPS and (with --dataset) mAP of detectors side by side")
    p.add_argument("detectors", nargs="+", help="registry names (see 'detect list'), e.g. yolov8n tv_fasterrcnn_resnet50_fpn")
    p.add_argument("--image-size", type=int, nargs="+", default=[320], help="input sizes (default: 320)")
    p.add_argument("--batch-size", type=int, nargs="+", default=[1, 8], help="batch sizes (default: 1 8)")
    p.add_argument("--dataset", type=Path, help="score mAP on this dataset (and time its images)")
    p.add_argument("--split", default=None, help="dataset split (default: train, or the only one)")
    p.add_argument("--max-images", type=int, help="score on the first N images only")
    p.add_argument("--weights", action="append", metavar="NAME=PATH", help="local weights for a detector; repeatable")
    p.add_argument("--threads", type=int, help="torch intra-op threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--out", type=Path, default=Path("runs/bench"))
    p.set_defaults(func=cmd_bench)


def cmd_list(args: argparse.Namespace) -> int:
    from detect.models.registry import detector_entry, list_detectors

    for name in list_detectors():
        entry = detector_entry(name)
        print(f"{name:45s} {entry.family:12s} {entry.backbone:25s} {'peer' if entry.peer else ''}")
    return 0


def cmd_scenes(args: argparse.Namespace) -> int:
    from classify.base.config import config_from_args
    from detect.data.build import build_digit_scenes
    from detect.data.scenes import SceneConfig, scene_config

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


def _add_crops_parser(data: argparse._SubParsersAction) -> None:
    p = data.add_parser("crops", help="cut every object into an image folder (for 'classify train --data')",
                        description="Cut every object of a detection dataset into OUT/<split>/<class>/*.png, "
                        "the image-folder layout 'classify train --data OUT' reads.")
    p.add_argument("data", type=Path, help="dataset (COCO json or folder, VOC folder, YOLO data.yaml or folder)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--format", choices=["coco", "voc", "yolo"], help="dataset format (default: detected)")
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


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on the embedded defaults: build the digit scenes, pretrain a ResNet-18 on their
    train/val digit crops, train the quick Faster R-CNN preset on that backbone, evaluate it on the
    test split and write the report and annotated images."""
    from detect.data.build import build_digit_scenes
    from detect.data.scenes import scene_config
    from detect.tasks.recipe import QUICK_CLASSIFIER_PRESET, QUICK_PRESET, detector_config, pretrain_backbone
    from detect.engine.trainer import fit

    build_digit_scenes(args.out, scene_config("default"))
    data = args.out / "coco"
    backbone = pretrain_backbone(data, args.run, QUICK_CLASSIFIER_PRESET)
    overrides = {"data": str(data), "output": str(args.run / "detector"), "exist_ok": True}
    result = fit(detector_config(QUICK_PRESET, backbone.weights, overrides))
    test = result.test_metrics or {}
    print(f"\nquick Faster R-CNN on a pretrained ResNet-18 ({backbone.minutes:.1f} min pretraining, "
          f"{result.iterations} iterations in {result.minutes:.1f} training minutes): "
          f"test AP50 {test.get('AP50', float('nan')):.3f}, AP50-95 {test.get('AP', float('nan')):.3f}")
    print(f"report: {result.run_dir / 'metrics.md'}  annotated test images: {result.run_dir / 'examples.png'}")
    return 0


def _add_scenes_parser(data: argparse._SubParsersAction) -> None:
    from classify.base.config import add_config_arguments
    from detect.data.scenes import SceneConfig

    p = data.add_parser("scenes", help="build the digit-scenes detection benchmark (COCO, VOC and YOLO)",
                        description="Build the digit-scenes benchmark. The preset's values can be "
                        "overridden by a YAML file (--config) and then by the flags below.")
    p.add_argument("--out", type=Path, default=Path("data/digit-scenes"))
    p.add_argument("--preset", default="default", help="size preset: tiny, default or large")
    p.add_argument("--force", action="store_true", help="rebuild even if the dataset is up to date")
    p.add_argument("--workers", type=int, help="rendering processes (default: up to 2)")
    add_config_arguments(p, SceneConfig)
    p.set_defaults(func=cmd_scenes)


def build_parser() -> argparse.ArgumentParser:
    parser = SuggestingParser(prog="detect", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("convert", help="convert a dataset between COCO, VOC and YOLO formats")
    p.add_argument("src", type=Path, help="source dataset (COCO json or folder, VOC folder, YOLO data.yaml or folder)")
    p.add_argument("dst", type=Path, help="output folder")
    p.add_argument("--to", required=True, choices=["coco", "voc", "yolo"], help="output format")
    p.add_argument("--from", dest="source_format", choices=["coco", "voc", "yolo"], help="source format (default: detected)")
    p.add_argument("--split", action="append", help="split(s) to convert (default: all); repeatable")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("validate", help="report every problem of a dataset by file and object index")
    p.add_argument("dataset", type=Path)
    p.add_argument("--format", choices=["coco", "voc", "yolo"], help="dataset format (default: detected)")
    p.add_argument("--split", action="append", help="split(s) to check (default: all); repeatable")
    p.add_argument("--no-images", action="store_true", help="skip decoding the images")
    p.set_defaults(func=cmd_validate)

    data = sub.add_parser("data", help="build datasets").add_subparsers(dest="data_command", required=True, metavar="WHAT")
    _add_scenes_parser(data)
    _add_crops_parser(data)

    _add_bench_parser(sub)
    add_eval_parser(sub)
    add_train_parser(sub)
    sub.add_parser("list", help="list the registered detectors").set_defaults(func=cmd_list)

    p = sub.add_parser("demo", help="the main job on the embedded defaults: build data, train, evaluate")
    p.add_argument("--out", type=Path, default=Path("data/digit-scenes"), help="dataset folder")
    p.add_argument("--run", type=Path, default=Path("runs/demo"), help="training run folder")
    p.set_defaults(func=cmd_demo)
    return parser


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run one verb, turning user errors into a one-line message and a non-zero exit."""
    try:
        return func(args)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_PROBLEMS
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)
