"""``detect bench``: latency, FPS and (with ``--dataset``) mAP of detectors side by side."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_bench(args: argparse.Namespace) -> int:
    from detect.models.loading import DetectorSpec
    from detect.tasks.bench import run_bench

    weights = dict(_parse_weights(item) for item in args.weights or [])
    if unknown := sorted(set(weights) - set(args.detectors)):
        raise ValueError(f"--weights for {', '.join(unknown)}, which is not among the detectors {args.detectors}")
    specs = [DetectorSpec(name=name, weights=weights.get(name)) for name in args.detectors]
    specs += [DetectorSpec(checkpoint=path) for path in args.checkpoint or []]
    run_bench(specs, args.image_size, args.batch_size, args.out, dataset=args.dataset, split=args.split,
              threads=args.threads, device=args.device, warmup=args.warmup, iterations=args.iterations,
              max_images=args.max_images)
    return 0


def _parse_weights(item: str) -> tuple[str, Path]:
    name, sep, path = item.partition("=")
    if not sep or not name or not path:
        raise ValueError(f"--weights expects NAME=PATH, got {item!r}")
    return name, Path(path)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="latency, FPS and (with --dataset) mAP of detectors side by side")
    p.add_argument("detectors", nargs="*", metavar="DETECTOR",
                   help="registry names (see 'detect list'), e.g. yolov8n tv_fasterrcnn_resnet50_fpn")
    p.add_argument("--checkpoint", type=Path, action="append", metavar="PATH",
                   help="a checkpoint written by 'detect train', timed (and scored) beside them; repeatable")
    p.add_argument("--image-size", type=int, nargs="+", default=[320], help="input sizes (default: 320)")
    p.add_argument("--batch-size", type=int, nargs="+", default=[1, 8], help="batch sizes (default: 1 8)")
    p.add_argument("--dataset", type=Path, help="score mAP on this dataset (and time its images)")
    p.add_argument("--split", default=None, help="dataset split (default: train, or the only one)")
    p.add_argument("--max-images", type=int, help="score on the first N images only")
    p.add_argument("--weights", action="append", metavar="NAME=PATH",
                   help="local weights for a registry detector (nothing is downloaded); repeatable")
    p.add_argument("--threads", type=int, help="torch intra-op threads")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls per detector first (default: 3)")
    p.add_argument("--iterations", type=int, default=10, help="timed calls per detector, round-robin (default: 10)")
    p.add_argument("--out", type=Path, default=Path("runs/bench"),
                   help="folder for bench.md, bench.json and bench.png (default: runs/bench)")
    p.set_defaults(func=cmd_bench)
