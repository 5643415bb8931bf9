"""``detect eval-track``: score a tracker's MOTChallenge results against ground-truth tracks.

Examples::

    detect data video --out data/digit-video --preset small
    detect eval-track data/digit-video runs/predict/track
    detect eval-track data/digit-video/gt/gt.txt runs/predict/track/tracks.txt --iou 0.5 --out runs/eval-track

"""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_eval_track(args: argparse.Namespace) -> int:
    """Run :func:`detect.tasks.track_eval.run_track_eval` with the parsed arguments."""
    from detect.tasks.track_eval import run_track_eval

    run_track_eval(args.gt, args.results, out_dir=args.out, iou=args.iou, min_visibility=args.min_visibility)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval-track",
        help="score tracks against MOTChallenge ground truth: HOTA, MOTA, IDF1, ID switches ...",
        description="Score a tracker's results (MOTChallenge format: frame,id,bb_left,bb_top,bb_width,bb_height,"
                    "score,-1,-1,-1) against ground-truth tracks (frame,id,bb_left,bb_top,bb_width,bb_height,conf,"
                    "class,visibility): HOTA/DetA/AssA (TrackEval), MOTA, MOTP, IDF1, ID switches, MT/PT/ML "
                    "(py-motmetrics). Ground-truth rows with conf 0 are ignored; the class column is not used.",
    )
    p.add_argument("gt", type=Path, metavar="GT",
                   help="a folder written by 'detect data video' (uses gt/gt.txt and seqinfo.ini) or a gt.txt")
    p.add_argument("results", type=Path, metavar="RESULTS",
                   help="a run folder holding tracks.txt ('detect predict --track') or a results .txt")
    p.add_argument("--out", type=Path, default=Path("runs/eval-track"), metavar="DIR",
                   help="folder of metrics.json (default: runs/eval-track)")
    p.add_argument("--iou", type=float, default=0.5,
                   help="least IoU of a match for MOTA, IDF1 and the counts (default 0.5; HOTA averages 0.05-0.95)")
    p.add_argument("--min-visibility", type=float, default=0.0, metavar="V",
                   help="also ignore ground-truth boxes less visible than V, like conf 0 rows (default 0: "
                        "every box counts, MOT17's rule)")
    p.set_defaults(func=cmd_eval_track)
