"""Tracking evaluation: MOTChallenge files read strictly; the metrics equal py-motmetrics' and
TrackEval's own on the same files; ``detect eval-track`` end to end."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from detect.cli import main
from detect.data.video_config import video_config
from detect.data.video_scenes import VideoRenderer, gt_row
from detect.evaluation.tracking import evaluate_tracking, read_mot_file
from detect.tasks.track_eval import run_track_eval

TINY = video_config("tiny", frames=30)


@pytest.fixture(scope="module")
def gt_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ground truth of a tiny digit-scenes video, as ``detect data video`` writes it."""
    path = tmp_path_factory.mktemp("video") / "gt" / "gt.txt"
    path.parent.mkdir()
    rows = [gt_row(f.index, o) for f in VideoRenderer(TINY) for o in f.objects]
    path.write_text("\n".join(rows) + "\n")
    (path.parent.parent / "seqinfo.ini").write_text(f"[Sequence]\nname=digits\nseqLength={TINY.frames}\n")
    return path


def _tracker_output(gt_file: Path, out: Path) -> Path:
    """A plausible tracker's tracks.txt: boxes jittered, one id swap, dropped boxes, a false positive."""
    rng = np.random.default_rng(0)
    rows = [line.split(",") for line in gt_file.read_text().split()]
    ids = sorted({int(r[1]) for r in rows})
    a, b = ids[0], ids[1]
    lines = []
    for k, r in enumerate(rows):
        frame, track = int(r[0]), int(r[1])
        if k % 17 == 5:  # dropped boxes
            continue
        if frame > 12 and track in (a, b):  # the tracker swaps two identities from frame 13 on
            track = b if track == a else a
        x, y, w, h = (float(v) + rng.normal(0.0, 0.7) for v in r[2:6])
        lines.append(f"{frame},{track + 100},{x:.2f},{y:.2f},{max(w, 1.0):.2f},{max(h, 1.0):.2f},0.9,-1,-1,-1")
    lines.append("7,999,5,5,10,12,0.3,-1,-1,-1")
    out.write_text("\n".join(lines) + "\n")
    return out


# --------------------------------------------------------------------------- the scores


def test_ground_truth_against_itself_is_perfect(gt_file: Path) -> None:
    gt = read_mot_file(gt_file, "gt")
    m = evaluate_tracking(gt, read_mot_file(gt_file, "results"))  # 9 columns are valid results too
    assert (m.mota, m.idf1, m.hota, m.deta, m.assa, m.motp) == (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    assert (m.id_switches, m.false_positives, m.misses, m.fragmentations) == (0, 0, 0, 0)
    assert m.mostly_tracked == m.gt_tracks == gt.num_tracks and m.matches == m.gt_boxes == len(gt)


def test_metrics_equal_motmetrics_and_trackeval_on_the_same_files(gt_file: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import motmetrics as mm
    import trackeval

    res_file = _tracker_output(gt_file, tmp_path / "tracks.txt")
    m = evaluate_tracking(read_mot_file(gt_file, "gt"), read_mot_file(res_file, "results"))
    assert m.id_switches >= 1 and m.misses >= 1 and m.false_positives >= 1  # the data has each kind

    # py-motmetrics' own pipeline: its MOT reader and IoU (np.asfarray is gone in numpy 2: shimmed here)
    monkeypatch.setattr(np, "asfarray", lambda a, dtype=float: np.asarray(a, dtype=dtype), raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its reader's pandas deprecation warning
        acc = mm.utils.compare_to_groundtruth(mm.io.loadtxt(gt_file, fmt="mot15-2D"),
                                              mm.io.loadtxt(res_file, fmt="mot15-2D"), "iou", distth=0.5)
    names = ["mota", "motp", "idf1", "idp", "idr", "precision", "recall", "num_switches", "num_fragmentations",
             "mostly_tracked", "partially_tracked", "mostly_lost", "num_false_positives", "num_misses",
             "num_detections"]
    ref = mm.metrics.create().compute(acc, metrics=names, name="x").iloc[0]
    ours = {"mota": m.mota, "motp": 1.0 - m.motp, "idf1": m.idf1, "idp": m.idp, "idr": m.idr,
            "precision": m.precision, "recall": m.recall, "num_switches": m.id_switches,
            "num_fragmentations": m.fragmentations, "mostly_tracked": m.mostly_tracked,
            "partially_tracked": m.partially_tracked, "mostly_lost": m.mostly_lost,
            "num_false_positives": m.false_positives, "num_misses": m.misses, "num_detections": m.matches}
    for name in names:
        assert ours[name] == pytest.approx(float(ref[name]), abs=1e-12), name

    # TrackEval's own MOT17 pipeline on files (class column 1 = its "pedestrian")
    seq = tmp_path / "gt" / "MOT17-train" / "digits"
    (seq / "gt").mkdir(parents=True)
    rows = [line.split(",") for line in gt_file.read_text().split()]
    (seq / "gt" / "gt.txt").write_text("".join(",".join(r[:7] + ["1", r[8]]) + "\n" for r in rows))
    (seq / "seqinfo.ini").write_text(f"[Sequence]\nname=digits\nseqLength={TINY.frames}\n")
    (tmp_path / "gt" / "seqmaps").mkdir()
    (tmp_path / "gt" / "seqmaps" / "MOT17-train.txt").write_text("name\ndigits\n")
    data = tmp_path / "trackers" / "MOT17-train" / "mine" / "data"
    data.mkdir(parents=True)
    shutil.copy(res_file, data / "digits.txt")
    quiet = {"PRINT_CONFIG": False}
    evaluator = trackeval.Evaluator({**quiet, "PRINT_RESULTS": False, "TIME_PROGRESS": False, "OUTPUT_SUMMARY": False,
                                     "OUTPUT_DETAILED": False, "PLOT_CURVES": False, "LOG_ON_ERROR": None})
    dataset = trackeval.datasets.MotChallenge2DBox({**quiet, "GT_FOLDER": str(tmp_path / "gt"),
                                                    "TRACKERS_FOLDER": str(tmp_path / "trackers")})
    metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(quiet), trackeval.metrics.Identity(quiet)]
    results, _ = evaluator.evaluate([dataset], metrics)
    te = results["MotChallenge2DBox"]["mine"]["digits"]["pedestrian"]
    for key, value in (("HOTA", m.hota), ("DetA", m.deta), ("AssA", m.assa), ("LocA", m.loca)):
        assert value == pytest.approx(float(np.mean(te["HOTA"][key])), abs=1e-12), key
    assert m.hota_per_alpha == pytest.approx(list(te["HOTA"]["HOTA"]), abs=1e-12)
    assert m.mota == pytest.approx(te["CLEAR"]["MOTA"]) and m.idf1 == pytest.approx(te["Identity"]["IDF1"])
    assert m.id_switches == te["CLEAR"]["IDSW"]


def test_a_hand_made_case(tmp_path: Path) -> None:
    """Two objects over 4 frames; the tracker misses one box, swaps ids once, adds a false box."""
    (tmp_path / "gt.txt").write_text("1,1,0,0,10,10,1,1,1\n1,2,40,0,10,10,1,1,1\n2,1,2,0,10,10,1,1,1\n"
                                     "2,2,38,0,10,10,1,1,1\n3,1,4,0,10,10,1,1,1\n3,2,36,0,10,10,1,1,1\n"
                                     "4,1,6,0,10,10,1,1,1\n4,2,34,0,10,10,1,1,1\n")
    (tmp_path / "res.txt").write_text("1,5,0,0,10,10,1,-1,-1,-1\n1,6,40,0,10,10,1,-1,-1,-1\n"
                                      "2,5,2,0,10,10,1,-1,-1,-1\n3,5,4,0,10,10,1,-1,-1,-1\n"
                                      "3,6,36,0,10,10,1,-1,-1,-1\n4,6,6,0,10,10,1,-1,-1,-1\n"
                                      "4,5,34,0,10,10,1,-1,-1,-1\n4,7,80,80,5,5,1,-1,-1,-1\n")
    m = evaluate_tracking(read_mot_file(tmp_path / "gt.txt", "gt"), read_mot_file(tmp_path / "res.txt", "results"))
    # 8 boxes: 1 miss (frame 2), 2 switches (frame 4, both ids), 1 false positive
    assert (m.misses, m.id_switches, m.false_positives, m.matches) == (1, 2, 1, 7)
    assert m.mota == pytest.approx(1 - (1 + 2 + 1) / 8)
    assert m.recall == pytest.approx(7 / 8) and m.precision == pytest.approx(7 / 8)
    assert m.idf1 == pytest.approx(2 * 5 / (8 + 8))  # ids 5 and 6 kept on 3 and 2 boxes of objects 1 and 2


def test_conf_zero_rows_and_low_visibility_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "gt.txt").write_text("1,1,0,0,10,10,1,1,1\n1,2,50,50,10,10,0,1,1\n"
                                     "2,1,1,0,10,10,1,1,0.2\n3,1,2,0,10,10,1,1,1\n")
    (tmp_path / "res.txt").write_text("1,7,0,0,10,10,0.9\n1,8,50,50,10,10,0.9\n2,7,1,0,10,10,0.9\n")
    gt, res = read_mot_file(tmp_path / "gt.txt", "gt"), read_mot_file(tmp_path / "res.txt", "results")
    m = evaluate_tracking(gt, res)  # the box on the conf-0 row is neither a match nor a false positive
    assert (m.matches, m.false_positives, m.misses, m.ignored_gt_boxes, m.dropped_predictions) == (2, 0, 1, 1, 1)
    m = evaluate_tracking(gt, res, min_visibility=0.5)  # frame 2's row (visibility 0.2) is ignored too
    assert (m.matches, m.false_positives, m.misses, m.ignored_gt_boxes, m.dropped_predictions) == (1, 0, 1, 2, 2)
    assert m.to_dict()["counts"]["gt_boxes"] == 2


def test_no_output_and_no_warnings(gt_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate_tracking(read_mot_file(gt_file, "gt"), read_mot_file(gt_file, "results"), iou=0.7)
    assert capsys.readouterr() == ("", "")


# --------------------------------------------------------------------------- bad files


@pytest.mark.parametrize(("kind", "text", "message"), [
    ("gt", "1,1,0,0,5,5,1,1,1\n1,2,0,0,5,5,1,1\n", r"gt.txt:2: expected 9 comma-separated values .* got 8"),
    ("results", "1,1,0,0,5\n", r"gt.txt:1: expected 6 to 10 comma-separated values .* got 5"),
    ("gt", "1,1,0,0,5,5,1,1,1\n\n2,1,0,abc,5,5,1,1,1\n", r"gt.txt:3: bb_top is not a number: 'abc'"),
    ("results", "1,1,0,0,-5,5,1,-1,-1,-1\n", r"gt.txt:1: bb_width must be >= 0, got -5"),
    ("results", "0,1,0,0,5,5,1,-1,-1,-1\n", r"gt.txt:1: frame must be >= 1 \(MOT frames are 1-based\), got 0"),
    ("results", "1,1.5,0,0,5,5,1,-1,-1,-1\n", r"gt.txt:1: id must be an integer, got 1.5"),
    ("results", "1,1,0,0,5,nan,1,-1,-1,-1\n", r"gt.txt:1: bb_height is not a finite number"),
    ("gt", "1,1,0,0,5,5,1,1,1\n2,1,0,0,5,5,1,1,1\n2,1,3,3,5,5,1,1,1\n",
     r"gt.txt:3: id 1 appears twice in frame 2 \(lines 2 and 3\)"),
])
def test_malformed_files_name_the_file_and_line(tmp_path: Path, kind: str, text: str, message: str) -> None:
    path = tmp_path / "gt.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_mot_file(path, kind)


def test_blank_lines_and_trailing_commas_read_as_a_clean_file(gt_file: Path, tmp_path: Path) -> None:
    """numpy's fast reader (clean files) and the line-by-line one (anything else) agree."""
    messy = tmp_path / "messy.txt"
    messy.write_text("\n" + "".join(line + ",\r\n\n" for line in gt_file.read_text().split()))
    clean, other = read_mot_file(gt_file, "gt"), read_mot_file(messy, "gt")
    for name in ("frames", "ids", "boxes", "conf", "classes", "visibility"):
        assert np.array_equal(getattr(clean, name), getattr(other, name)), name
        assert getattr(clean, name).dtype == getattr(other, name).dtype, name
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert len(read_mot_file(empty, "results")) == 0  # a tracker that found nothing


def test_wrong_paths_and_frames_past_the_sequence(gt_file: Path, tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match="found a folder"):
        read_mot_file(tmp_path, "gt")
    with pytest.raises(FileNotFoundError, match="has no tracks.txt"):
        run_track_eval(gt_file.parent.parent, tmp_path, out_dir=None)
    with pytest.raises(FileNotFoundError, match="has no gt/gt.txt"):
        run_track_eval(tmp_path, gt_file, out_dir=None)
    late = tmp_path / "late.txt"
    late.write_text(f"{TINY.frames + 1},1,0,0,5,5,1,-1,-1,-1\n")
    with pytest.raises(ValueError, match=rf"late.txt:1: frame {TINY.frames + 1} is past the sequence's last frame"):
        run_track_eval(gt_file.parent.parent, late, out_dir=None)


# --------------------------------------------------------------------------- the command line


def test_eval_track_command(gt_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    _tracker_output(gt_file, run / "tracks.txt")
    out = tmp_path / "eval"
    assert main(["eval-track", str(gt_file.parent.parent), str(run), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Tracking metrics" in text and "HOTA" in text and "ID switches" in text
    saved = json.loads((out / "metrics.json").read_text())
    direct = evaluate_tracking(read_mot_file(gt_file, "gt"), read_mot_file(run / "tracks.txt", "results"))
    assert saved == json.loads(json.dumps(direct.to_dict()))
    assert main(["eval-track", str(gt_file), str(gt_file), "--out", str(out), "--iou", "0.7"]) == 0
    assert json.loads((out / "metrics.json").read_text())["metrics"]["MOTA"] == 1.0
    capsys.readouterr()
    (run / "tracks.txt").write_text("1,1,0,0,5,5,1,-1,-1,-1\n1,2,0,0,5\n")
    assert main(["eval-track", str(gt_file.parent.parent), str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {run / 'tracks.txt'}:2: expected 6 to 10 comma-separated values " \
                  "(frame,id,bb_left,bb_top,bb_width,bb_height,score,x,y,z), got 5\n"
