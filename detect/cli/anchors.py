"""``detect anchors``: YOLO anchors fitted to a dataset's boxes by k-means (1 - IoU), against hand-picked ones.

Examples::

    detect anchors data/digit-scenes/coco -k 9 --image-size 320
    detect anchors data/digit-scenes/yolo/data.yaml -k 5 --split val --json runs/anchors.json

"""

from __future__ import annotations

import argparse
from pathlib import Path

from detect.cli.options import add_format


def cmd_anchors(args: argparse.Namespace) -> int:
    """Run :func:`detect.tasks.anchors.run_anchors` with the parsed arguments."""
    from detect.tasks.anchors import run_anchors

    run_anchors(args.dataset, k=args.k, image_size=args.image_size, split=args.split, fmt=args.format,
                seed=args.seed, json_path=args.json)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "anchors",
        help="fit YOLO anchors to a dataset's boxes (k-means, 1 - IoU) and compare with hand-picked ones",
        description="k-means of the (w, h) of one split's boxes, letterboxed to --image-size, with the distance "
                    "1 - IoU (YOLOv2): prints the k anchors sorted by area (for k = 9 the stride 8/16/32 level of "
                    "each, as yolov3's detector_kwargs anchors) and the mean best IoU of the boxes with them and "
                    "with hand-picked anchors of the same k (k = 9: the YOLOv3 paper's COCO anchors, scaled).",
    )
    p.add_argument("dataset", type=Path, metavar="DATASET",
                   help="dataset (COCO json or folder, VOC folder, YOLO data.yaml or folder)")
    p.add_argument("-k", type=int, default=9, help="number of anchors (default 9: three a level of yolov3)")
    p.add_argument("--image-size", type=int, default=320, metavar="N",
                   help="letterbox canvas side the boxes are scaled to, the detector's image_size (default 320)")
    p.add_argument("--split", default="train", help="split whose boxes are clustered (default: train)")
    add_format(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the k-means++ initialisation (default 0)")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the report as JSON to PATH")
    p.set_defaults(func=cmd_anchors)
