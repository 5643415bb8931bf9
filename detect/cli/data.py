"""``detect data scenes|video|crops``: build the digit-scenes benchmark; render a digit-scenes video
with its ground-truth tracks; cut a dataset's objects into an image folder."""

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


def cmd_video(args: argparse.Namespace) -> int:
    from classify.base.config import config_from_args
    from detect.data.video_config import VideoConfig, video_config
    from detect.data.video_scenes import write_video

    config = config_from_args(VideoConfig, args, base=video_config(args.preset))
    summary = write_video(config, args.out, codec=args.codec, images=args.images, force=args.force,
                          progress=not args.quiet)
    s = summary.stats
    if summary.reused:
        print(f"the digit-scenes video in {args.out} is up to date (use --force to render it again)")
    else:
        print(f"rendered and encoded {s['frames']} frames of {s['width']}x{s['height']} in {summary.seconds:.1f} s "
              f"({summary.frames_per_second:.0f} frames/s)")
    vis = s["visibility"]
    print(f"{s['tracks']} tracks ({s['tracks_entering']} entering, {s['tracks_leaving']} leaving), {s['rows']} boxes, "
          f"{s['objects_per_frame']['mean']:.1f} a frame; visibility mean {vis['mean']:.2f}, "
          f"{vis['rows_below_0.5']} boxes below 0.5; {s['crossings']} crossings, {s['occlusions']} occlusions")
    out = summary.out
    print(f"video:        {summary.video}")
    print(f"ground truth: {summary.gt} (MOTChallenge: frame,id,bb_left,bb_top,bb_width,bb_height,conf,class,"
          "visibility)")
    print(f"also:         {out / 'seqinfo.ini'}, {out / 'labels.txt'}, {out / 'stats.json'}, "
          f"{out / 'video_config.json'}" + (f", {out / 'img1'}/" if args.images else ""))
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


def _add_video(data: argparse._SubParsersAction) -> None:
    from classify.base.config import add_config_arguments
    from detect.data.video_config import CODECS, PRESETS, VideoConfig

    p = data.add_parser("video", help="render a digit-scenes video with exact ground-truth tracks (MOTChallenge)",
                        description="Render a video of handwritten digits that move, enter and leave through "
                        "the borders, cross and occlude each other, with its ground truth in MOTChallenge "
                        "format: OUT/video.mp4, OUT/gt/gt.txt, OUT/seqinfo.ini, OUT/labels.txt, OUT/stats.json. "
                        "The preset's values can be overridden by a YAML file (--config) and then by the flags "
                        "below.")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--preset", default="default", choices=sorted(PRESETS),
                   help="size preset: tiny (160x120, 40 frames), small (320x240, 300 frames) or default "
                   "(640x480, 600 frames)")
    p.add_argument("--codec", choices=list(CODECS), default="mp4v",
                   help="mp4v writes video.mp4, mjpg and xvid video.avi, vp80 and vp90 video.webm (slow to "
                   "encode: tens of frames/s at 320x240, vp90 a few) (default: mp4v; OpenCV has no H.264 "
                   "encoder here)")
    p.add_argument("--images", action="store_true", help="also write every frame as OUT/img1/NNNNNN.jpg")
    p.add_argument("--force", action="store_true", help="render even if OUT holds this video already")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_arguments(p, VideoConfig)
    p.set_defaults(func=cmd_video)


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
    _add_video(data)
    _add_crops(data)
