"""ByteTrack settings against one run's detections: re-track saved detections with a grid of
settings and score each with the tracking evaluator (docs/benchmarks/inference.md, tracking).

    detect predict VIDEO --checkpoint best.pt --conf 0.1 --no-annotate --no-txt --out runs/raw
    python tools/retrack_grid.py runs/raw GT_FOLDER/gt/gt.txt

The detector runs once (at a low score threshold, as ByteTrack's second stage needs); each line
printed is one setting: IDF1, MOTA, HOTA, ID switches, false positives and misses.
"""

from __future__ import annotations

import itertools
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from detect.evaluation.tracking import evaluate_tracking, read_mot_file  # noqa: E402
from detect.inference.detections import Detections  # noqa: E402
from detect.inference.tracking import Tracker, TrackerConfig  # noqa: E402
from detect.inference.writers import MotWriter  # noqa: E402


def saved_detections(run: Path) -> list[Detections]:
    """The frames of a ``detect predict`` run's ``predictions.jsonl``."""
    frames = []
    for line in (run / "predictions.jsonl").read_text().splitlines():
        record, found = json.loads(line), json.loads(line)["detections"]
        frames.append(Detections([d["box"] for d in found], [d["score"] for d in found], [d["label"] for d in found],
                                 sorted({d["name"] for d in found}) or ["0"], (record["width"], record["height"]),
                                 record["source"], record["frame"], record["timestamp"]))
    return frames


def main() -> int:
    run, gt = Path(sys.argv[1]), Path(sys.argv[2])
    frames, truth = saved_detections(run), read_mot_file(gt, "gt")
    with tempfile.TemporaryDirectory() as tmp:
        for conf, high, activation, lost in itertools.product([0.25, 0.5, 0.7, 0.8], [0.5, 0.7], [0.6, 0.8], [30, 60]):
            if activation < high:
                continue
            tracker = Tracker(TrackerConfig(high_conf=high, activation=activation, lost_frames=lost), frame_rate=30)
            writer = MotWriter(Path(tmp) / "tracks.txt")
            for detections in frames:
                tracked = tracker.update(detections)
                writer.write(tracked.select(tracked.scores >= conf))
            writer.close()
            m = evaluate_tracking(truth, read_mot_file(Path(tmp) / "tracks.txt", "results")).metrics()
            print(f"report >= {conf} first stage >= {high} activation {activation} lost {lost}: IDF1 {m['IDF1']:.3f} "
                  f"MOTA {m['MOTA']:.3f} HOTA {m['HOTA']:.3f} IDSW {m['IDSW']} FP {m['FP']} FN {m['FN']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
