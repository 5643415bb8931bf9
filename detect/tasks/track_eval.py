"""The ``detect eval-track`` job: MOTChallenge ground truth + a tracker's results -> tracking metrics.

Ground truth: a folder written by ``detect data video`` (its ``gt/gt.txt``, and ``seqinfo.ini``
for the sequence length) or a ``gt.txt`` itself. Results: a run folder holding ``tracks.txt``
(what ``detect predict --track`` writes) or the results file itself. Writes
``OUT/metrics.json`` and prints the table.
"""

from __future__ import annotations

import configparser
from pathlib import Path

from detect.evaluation.tracking import TrackingMetrics, evaluate_tracking, read_mot_file

RESULTS_NAME = "tracks.txt"


def resolve_gt(gt: Path) -> tuple[Path, int | None]:
    """The ground-truth file of ``gt`` (a sequence folder or the file) and the sequence length
    from the folder's ``seqinfo.ini`` (None when there is none)."""
    gt = Path(gt)
    if gt.is_dir():
        folder, path = gt, gt / "gt" / "gt.txt"
        if not path.is_file():
            raise FileNotFoundError(f"{gt}: expected a folder written by 'detect data video' (with gt/gt.txt) "
                                    "or a MOTChallenge gt.txt file; this folder has no gt/gt.txt")
    elif gt.is_file():
        path = gt
        folder = gt.parent.parent if gt.parent.name == "gt" else gt.parent
    else:
        raise FileNotFoundError(f"{gt}: no such ground-truth folder or file")
    return path, _sequence_length(folder / "seqinfo.ini")


def _sequence_length(ini: Path) -> int | None:
    if not ini.is_file():
        return None
    parser = configparser.ConfigParser()
    try:
        parser.read(ini)
        return int(parser["Sequence"]["seqLength"])
    except (configparser.Error, KeyError, ValueError) as err:
        raise ValueError(f"{ini}: expected a [Sequence] section with an integer seqLength ({err})") from None


def resolve_results(results: Path) -> Path:
    """The results file of ``results``: the file itself, or ``tracks.txt`` in a run folder."""
    results = Path(results)
    if results.is_dir():
        path = results / RESULTS_NAME
        if not path.is_file():
            raise FileNotFoundError(f"{results}: expected a run folder holding {RESULTS_NAME} "
                                    "(from 'detect predict --track') or a MOTChallenge results .txt file; "
                                    f"this folder has no {RESULTS_NAME}")
        return path
    if not results.is_file():
        raise FileNotFoundError(f"{results}: no such results folder or file")
    return results


def run_track_eval(gt: Path, results: Path, out_dir: Path | None = Path("runs/eval-track"), iou: float = 0.5,
                   min_visibility: float = 0.0, console: object | None = None) -> TrackingMetrics:
    """Score the tracks of ``results`` against ``gt``; print the table and write
    ``out_dir/metrics.json`` (nothing is written when ``out_dir`` is None)."""
    gt_path, length = resolve_gt(gt)
    results_path = resolve_results(results)
    truth = read_mot_file(gt_path, "gt", max_frame=length)
    tracks = read_mot_file(results_path, "results", max_frame=length)
    metrics = evaluate_tracking(truth, tracks, iou=iou, min_visibility=min_visibility)
    metrics.print_table(console)
    if out_dir is not None:
        written = metrics.to_json(Path(out_dir) / "metrics.json")
        print(f"wrote {written}")
    return metrics
