"""Multi-object tracking metrics on MOTChallenge files: CLEAR MOT and identity metrics from
``motmetrics``, HOTA from ``trackeval``, on the same matches.

Files (one box a line, comma separated, frames 1-based, boxes in pixels)::

    ground truth  frame,id,bb_left,bb_top,bb_width,bb_height,conf,class,visibility
    results       frame,id,bb_left,bb_top,bb_width,bb_height[,score[,x,y,z]]   (6 to 10 values)

:func:`read_mot_file` checks every line and raises a ``ValueError`` naming the file and the line:
a wrong number of values, a value that is not a finite number, a frame or id that is not an
integer, a frame below 1, a negative width or height, an id twice in one frame.

Conventions (MOTChallenge's, as TrackEval applies them to MOT17):

* a ground-truth row with ``conf`` 0 is *ignored*: it is neither a miss nor a match, and a
  predicted box matched to it (Hungarian matching on IoU >= ``iou``, jointly with the other
  ground truth of the frame) is dropped rather than counted as a false positive;
* visibility is not used unless ``min_visibility`` > 0: then rows below it are ignored the
  same way (by default every ``conf`` 1 row counts, even a fully occluded one: MOT17's rule,
  so the numbers equal those of py-motmetrics and TrackEval on the same files);
* the class column is not used: tracking is scored class-agnostic (MOT results carry no class).

Matching: a predicted box can match a ground-truth box of the same frame when their IoU
(:func:`detect.box_ops.box_iou`, continuous ``xywh`` pixels, no +1) is at least ``iou``. CLEAR MOT
and IDF1 come from ``motmetrics.MOTAccumulator`` fed with the distance ``1 - IoU`` (pairs below
the threshold do-not-pair); HOTA, DetA, AssA... from ``trackeval.metrics.HOTA`` run in memory on
the IoU matrices (averaged over its 19 localisation thresholds 0.05-0.95, independently of
``iou``). ``MOTP`` is reported as MOTChallenge and TrackEval do: the mean IoU of the matches
(motmetrics' own ``motp`` is the mean distance ``1 - IoU``).

numpy 2: ``motmetrics`` 1.4.0's ``distances.iou_matrix`` (and so ``utils.compare_to_groundtruth``)
calls ``np.asfarray``, removed in numpy 2.0; this module never calls it (the IoU matrix is computed
here). ``trackeval`` 1.3.0's HOTA runs on numpy 2 unchanged.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detect.box_ops import box_iou

GT_COLUMNS = ("frame", "id", "bb_left", "bb_top", "bb_width", "bb_height", "conf", "class", "visibility")
RESULT_COLUMNS = ("frame", "id", "bb_left", "bb_top", "bb_width", "bb_height", "score", "x", "y", "z")
_MIN_RESULT_COLUMNS = 6
_IOU_CHUNK = 16  # frames whose boxes go through one box_iou call (larger: mostly wasted pairs)


# --------------------------------------------------------------------------- files


@dataclass(frozen=True, eq=False)
class MOTTable:
    """The rows of one MOTChallenge file, in file order.

    Attributes:
        path: the file read.
        frames: ``int64 [N]`` 1-based frame numbers.
        ids: ``int64 [N]`` track ids.
        boxes: ``float64 [N, 4]`` ``(bb_left, bb_top, bb_width, bb_height)``.
        conf: ``float64 [N]`` the 7th value (ground truth: 0 = ignore; results: the score), 1 if absent.
        classes: ``int64 [N]`` the ground truth's class (-1 for results).
        visibility: ``float64 [N]`` the ground truth's visibility (1 for results).
    """

    path: Path
    frames: np.ndarray
    ids: np.ndarray
    boxes: np.ndarray
    conf: np.ndarray
    classes: np.ndarray
    visibility: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def num_tracks(self) -> int:
        return len(np.unique(self.ids))


def _number(text: str, path: Path, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{path}:{line}: {column} is not a number: {text.strip()!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{path}:{line}: {column} is not a finite number: {text.strip()!r}")
    return value


def _integer(value: float, path: Path, line: int, column: str) -> int:
    if not value.is_integer():
        raise ValueError(f"{path}:{line}: {column} must be an integer, got {value:g}")
    return int(value)


def read_mot_file(path: Path | str, kind: str, max_frame: int | None = None) -> MOTTable:
    """Read a MOTChallenge ground-truth (``kind="gt"``, 9 values a line) or results file
    (``kind="results"``, 6 to 10 values a line); blank lines are skipped.

    Args:
        path: the text file.
        kind: ``"gt"`` or ``"results"``.
        max_frame: when given, a row past this frame (the sequence's ``seqLength``) is an error.

    Raises:
        FileNotFoundError: no such file; IsADirectoryError: a folder.
        ValueError: the first malformed line, as ``path:line: what is wrong``.
    """
    if kind not in ("gt", "results"):
        raise ValueError(f"kind: expected 'gt' or 'results', got {kind!r}")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: expected a MOTChallenge {kind} .txt file, found a folder")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {kind} file")
    table = _read_fast(path, kind, max_frame)
    return table if table is not None else _read_checked(path, kind, max_frame)


def _table(path: Path, kind: str, values: np.ndarray) -> MOTTable:
    """A table from the ``float64 [N, C]`` values of a checked file."""
    n, columns = values.shape
    conf = values[:, 6] if columns > 6 else np.ones(n)
    classes = values[:, 7].astype(np.int64) if kind == "gt" else np.full(n, -1, np.int64)
    visibility = values[:, 8] if kind == "gt" else np.ones(n)
    return MOTTable(path=path, frames=values[:, 0].astype(np.int64), ids=values[:, 1].astype(np.int64),
                    boxes=np.ascontiguousarray(values[:, 2:6]), conf=np.ascontiguousarray(conf),
                    classes=classes, visibility=np.ascontiguousarray(visibility))


def _read_fast(path: Path, kind: str, max_frame: int | None) -> MOTTable | None:
    """The table when the file is well formed (numpy's reader and vectorised checks); None
    when anything is off, for :func:`_read_checked` to find and name the first bad line."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an empty file
            values = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2, comments=None)
    except ValueError:
        return None
    if values.size == 0:
        return _table(path, kind, np.zeros((0, len(GT_COLUMNS))))
    low, high = _column_range(kind)
    frames, ids = values[:, 0], values[:, 1]
    integral = np.all(frames == np.round(frames)) and np.all(ids == np.round(ids))
    if not (low <= values.shape[1] <= high and np.isfinite(values).all() and integral and (frames >= 1).all()
            and (values[:, 4:6] >= 0).all() and (max_frame is None or frames.max() <= max_frame)
            and (kind != "gt" or np.all(values[:, 7] == np.round(values[:, 7])))):
        return None
    pairs = np.stack([frames, ids], axis=1)
    if len(np.unique(pairs, axis=0)) != len(pairs):
        return None
    return _table(path, kind, values)


def _column_range(kind: str) -> tuple[int, int]:
    return (len(GT_COLUMNS), len(GT_COLUMNS)) if kind == "gt" else (_MIN_RESULT_COLUMNS, len(RESULT_COLUMNS))


def _read_checked(path: Path, kind: str, max_frame: int | None) -> MOTTable:
    """Read line by line, raising on the first malformed line."""
    names = GT_COLUMNS if kind == "gt" else RESULT_COLUMNS
    low, high = _column_range(kind)
    expected = f"{low}" if low == high else f"{low} to {high}"
    frames, ids, boxes, conf, classes, visibility = [], [], [], [], [], []
    seen: dict[tuple[int, int], int] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, text in enumerate(f, 1):
            if not text.strip():
                continue
            parts = text.rstrip("\r\n").rstrip(",").split(",")
            if not low <= len(parts) <= high:
                raise ValueError(f"{path}:{number}: expected {expected} comma-separated values "
                                 f"({','.join(names[:high])}), got {len(parts)}")
            values = [_number(p, path, number, names[i]) for i, p in enumerate(parts)]
            frame = _integer(values[0], path, number, "frame")
            track = _integer(values[1], path, number, "id")
            if frame < 1:
                raise ValueError(f"{path}:{number}: frame must be >= 1 (MOT frames are 1-based), got {frame}")
            if max_frame is not None and frame > max_frame:
                raise ValueError(f"{path}:{number}: frame {frame} is past the sequence's last frame {max_frame}")
            for column in (4, 5):
                if values[column] < 0:
                    raise ValueError(f"{path}:{number}: {names[column]} must be >= 0, got {values[column]:g}")
            if (frame, track) in seen:
                raise ValueError(f"{path}:{number}: id {track} appears twice in frame {frame} "
                                 f"(lines {seen[frame, track]} and {number})")
            seen[frame, track] = number
            frames.append(frame)
            ids.append(track)
            boxes.append(values[2:6])
            conf.append(values[6] if len(values) > 6 else 1.0)
            if kind == "gt":
                classes.append(_integer(values[7], path, number, "class"))
                visibility.append(values[8])
            else:
                classes.append(-1)
                visibility.append(1.0)
    return MOTTable(path=path, frames=np.array(frames, dtype=np.int64), ids=np.array(ids, dtype=np.int64),
                    boxes=np.array(boxes, dtype=np.float64).reshape(-1, 4), conf=np.array(conf, dtype=np.float64),
                    classes=np.array(classes, dtype=np.int64), visibility=np.array(visibility, dtype=np.float64))


# --------------------------------------------------------------------------- the metrics


HOTA_FIELDS = ("HOTA", "DetA", "AssA", "DetRe", "DetPr", "AssRe", "AssPr", "LocA")
#: the rows of the terminal table, in order: (key of to_dict()["metrics"], shown name)
TABLE_ROWS = (
    ("HOTA", "HOTA"), ("DetA", "DetA"), ("AssA", "AssA"), ("MOTA", "MOTA"), ("MOTP", "MOTP (mean IoU)"),
    ("IDF1", "IDF1"), ("IDP", "IDP"), ("IDR", "IDR"), ("precision", "precision"), ("recall", "recall"),
    ("IDSW", "ID switches"), ("Frag", "fragmentations"), ("MT", "mostly tracked"), ("PT", "partially tracked"),
    ("ML", "mostly lost"), ("FP", "false positives"), ("FN", "misses (FN)"), ("TP", "matches (TP)"),
)


@dataclass
class TrackingMetrics:
    """Tracking scores of one sequence (see the module docstring for the conventions).

    Attributes:
        mota, motp, idf1, idp, idr, precision, recall: CLEAR MOT / identity ratios (motmetrics);
            ``motp`` is the mean IoU of the matches.
        id_switches, fragmentations, mostly_tracked, partially_tracked, mostly_lost,
        false_positives, misses, matches: counts (motmetrics); ``matches`` counts every matched
            ground-truth box, those with an id switch included (motmetrics' ``num_detections``).
        hota, deta, assa, detre, detpr, assre, asspr, loca: HOTA and its parts, each the mean over
            TrackEval's 19 thresholds; ``hota_per_alpha``: the HOTA at each of them.
        iou, min_visibility: the settings.
        frames: frames scored (those with a ground-truth or predicted box).
        gt_tracks, gt_boxes, predicted_tracks, predicted_boxes: what was scored.
        ignored_gt_boxes, dropped_predictions: ground truth ignored (conf 0 or below
            ``min_visibility``), and predictions dropped for matching it.
        gt_path, results_path: the files.
    """

    mota: float
    motp: float
    idf1: float
    idp: float
    idr: float
    precision: float
    recall: float
    id_switches: int
    fragmentations: int
    mostly_tracked: int
    partially_tracked: int
    mostly_lost: int
    false_positives: int
    misses: int
    matches: int
    hota: float
    deta: float
    assa: float
    detre: float
    detpr: float
    assre: float
    asspr: float
    loca: float
    hota_per_alpha: list[float] = field(default_factory=list)
    iou: float = 0.5
    min_visibility: float = 0.0
    frames: int = 0
    gt_tracks: int = 0
    gt_boxes: int = 0
    predicted_tracks: int = 0
    predicted_boxes: int = 0
    ignored_gt_boxes: int = 0
    dropped_predictions: int = 0
    gt_path: str = ""
    results_path: str = ""

    def metrics(self) -> dict[str, float | int]:
        """The headline numbers under MOTChallenge's names (``HOTA``, ``MOTA``, ``IDSW``, ...)."""
        return {
            "HOTA": self.hota, "DetA": self.deta, "AssA": self.assa, "DetRe": self.detre, "DetPr": self.detpr,
            "AssRe": self.assre, "AssPr": self.asspr, "LocA": self.loca,
            "MOTA": self.mota, "MOTP": self.motp, "IDF1": self.idf1, "IDP": self.idp, "IDR": self.idr,
            "precision": self.precision, "recall": self.recall,
            "IDSW": self.id_switches, "Frag": self.fragmentations, "MT": self.mostly_tracked,
            "PT": self.partially_tracked, "ML": self.mostly_lost, "FP": self.false_positives, "FN": self.misses,
            "TP": self.matches,
        }

    def to_dict(self) -> dict:
        """JSON-ready: ``metrics`` (:meth:`metrics`, NaN -> None), ``hota_per_alpha``, ``counts``,
        ``settings`` and ``files``."""
        return {
            "metrics": {k: _json_number(v) for k, v in self.metrics().items()},
            "hota_per_alpha": {f"{a:.2f}": _json_number(v) for a, v in zip(HOTA_ALPHAS, self.hota_per_alpha)},
            "counts": {"frames": self.frames, "gt_tracks": self.gt_tracks, "gt_boxes": self.gt_boxes,
                       "predicted_tracks": self.predicted_tracks, "predicted_boxes": self.predicted_boxes,
                       "ignored_gt_boxes": self.ignored_gt_boxes, "dropped_predictions": self.dropped_predictions},
            "settings": {"iou": self.iou, "min_visibility": self.min_visibility,
                         "motp": "mean IoU of the matches",
                         "hota": "mean over the localisation thresholds 0.05, 0.10, ..., 0.95"},
            "files": {"gt": self.gt_path, "results": self.results_path},
        }

    def to_json(self, path: Path | str) -> Path:
        """Write :meth:`to_dict` to ``path`` (parents created); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        return path

    def print_table(self, console: object | None = None) -> None:
        """Print the metrics as a ``rich`` table."""
        from rich.console import Console
        from rich.table import Table

        console = Console() if console is None else console
        table = Table(title="Tracking metrics")
        table.add_column("metric")
        table.add_column("value", justify="right")
        values = self.metrics()
        for key, name in TABLE_ROWS:
            table.add_row(name, _fmt(values[key]))
        console.print(table)
        ignored = (f"; ignored {self.ignored_gt_boxes} ground-truth boxes (conf 0"
                   + (f" or visibility < {self.min_visibility:g}" if self.min_visibility > 0 else "")
                   + f") and {self.dropped_predictions} predictions on them") if self.ignored_gt_boxes else ""
        console.print(f"{self.frames} frames: {self.gt_boxes} ground-truth boxes in {self.gt_tracks} tracks, "
                      f"{self.predicted_boxes} predicted boxes in {self.predicted_tracks} tracks{ignored}. "
                      f"CLEAR MOT and identity metrics match at IoU >= {self.iou:g}; HOTA, DetA and AssA are "
                      "means over IoU 0.05-0.95.")


HOTA_ALPHAS = tuple(float(a) for a in np.arange(0.05, 0.99, 0.05))


def _json_number(value: float) -> float | None:
    if isinstance(value, (int, np.integer)):
        return int(value)
    value = float(value)
    return None if math.isnan(value) else value


def _fmt(value: float) -> str:
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    return "-" if math.isnan(value) else f"{value:.3f}"


# --------------------------------------------------------------------------- scoring


@dataclass
class _Frame:
    """The scored boxes of one frame: ground-truth and predicted ids, and their IoU."""

    frame: int
    gt_ids: np.ndarray
    ids: np.ndarray
    iou: np.ndarray  # [gt, predicted]


def _xyxy(boxes: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    out[:, 2:] += out[:, :2]
    return out


def _by_frame(table: MOTTable) -> dict[int, np.ndarray]:
    """Frame -> the row indices of ``table`` in that frame (file order)."""
    order = np.argsort(table.frames, kind="stable")
    frames, starts = np.unique(table.frames[order], return_index=True)
    return {int(f): idx for f, idx in zip(frames, np.split(order, starts[1:]))}


def _frame_ious(gt: MOTTable, results: MOTTable, frames: list[int], gt_rows: dict[int, np.ndarray],
                res_rows: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Frame -> the IoU ``[gt rows, result rows]`` of that frame, computed a chunk of frames at a
    time (one :func:`box_iou` call for many small frames)."""
    empty = np.zeros(0, dtype=np.int64)
    out = {}
    for start in range(0, len(frames), _IOU_CHUNK):
        chunk = frames[start:start + _IOU_CHUNK]
        g = [gt_rows.get(f, empty) for f in chunk]
        r = [res_rows.get(f, empty) for f in chunk]
        gi, ri = np.concatenate(g), np.concatenate(r)
        big = box_iou(_xyxy(gt.boxes[gi]), _xyxy(results.boxes[ri])) if len(gi) and len(ri) else None
        g0 = np.cumsum([0] + [len(x) for x in g])
        r0 = np.cumsum([0] + [len(x) for x in r])
        for k, f in enumerate(chunk):
            out[f] = big[g0[k]:g0[k + 1], r0[k]:r0[k + 1]] if big is not None else np.zeros((len(g[k]), len(r[k])))
    return out


def _frames(gt: MOTTable, results: MOTTable, iou: float, min_visibility: float) -> tuple[list[_Frame], int, int]:
    """The scored boxes of every frame, after the ignore rules; and the ignored / dropped counts."""
    from scipy.optimize import linear_sum_assignment

    ignored = (gt.conf == 0) | (gt.visibility < min_visibility)
    gt_rows, res_rows = _by_frame(gt), _by_frame(results)
    frames = sorted(set(gt_rows) | set(res_rows))
    ious = _frame_ious(gt, results, frames, gt_rows, res_rows)
    empty = np.zeros(0, dtype=np.int64)
    out, dropped = [], 0
    for frame in frames:
        g, r, sim = gt_rows.get(frame, empty), res_rows.get(frame, empty), ious[frame]
        ign = ignored[g]
        if ign.any() and len(r):
            score = np.where(sim >= iou, sim, 0.0)
            rows, cols = linear_sum_assignment(-score)
            hit = score[rows, cols] > 0
            drop = cols[hit & ign[rows]]
            dropped += len(drop)
            keep_r = np.setdiff1d(np.arange(len(r)), drop)
            r, sim = r[keep_r], sim[:, keep_r]
        g, sim = g[~ign], sim[~ign]
        if len(g) or len(r):
            out.append(_Frame(frame, gt.ids[g], results.ids[r], np.ascontiguousarray(sim)))
    return out, int(ignored.sum()), dropped


def _motmetrics(frames: list[_Frame], iou: float) -> dict[str, float]:
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=False)
    max_dist = 1.0 - iou
    for f in frames:
        dist = 1.0 - f.iou
        dist = np.where(dist > max_dist, np.nan, dist)  # motmetrics.distances.iou_matrix's rule
        acc.update(f.gt_ids.tolist(), f.ids.tolist(), dist, frameid=f.frame)
    names = ["mota", "motp", "idf1", "idp", "idr", "precision", "recall", "num_switches", "num_fragmentations",
             "mostly_tracked", "partially_tracked", "mostly_lost", "num_false_positives", "num_misses",
             "num_detections"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 0/0 ratios of an empty side: NaN, as intended
        summary = mm.metrics.create().compute(acc, metrics=names, name="sequence")
    return {name: summary[name].iloc[0] for name in names}


def _hota(frames: list[_Frame]) -> dict[str, np.ndarray | float]:
    from trackeval.metrics import HOTA

    gt_ids = np.unique(np.concatenate([f.gt_ids for f in frames])) if frames else np.zeros(0, np.int64)
    tr_ids = np.unique(np.concatenate([f.ids for f in frames])) if frames else np.zeros(0, np.int64)
    data = {
        "num_timesteps": len(frames),
        "num_gt_ids": len(gt_ids), "num_tracker_ids": len(tr_ids),
        "num_gt_dets": sum(len(f.gt_ids) for f in frames), "num_tracker_dets": sum(len(f.ids) for f in frames),
        "gt_ids": [np.searchsorted(gt_ids, f.gt_ids) for f in frames],
        "tracker_ids": [np.searchsorted(tr_ids, f.ids) for f in frames],
        "similarity_scores": [f.iou for f in frames],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = HOTA().eval_sequence(data)
    return res


def evaluate_tracking(gt: MOTTable, results: MOTTable, iou: float = 0.5,
                      min_visibility: float = 0.0) -> TrackingMetrics:
    """Score ``results`` against ``gt`` (tables from :func:`read_mot_file`).

    Args:
        gt: the ground truth (``conf`` 0 rows are ignored).
        results: the tracker's boxes.
        iou: the least IoU of a match for CLEAR MOT and the identity metrics (and for the
            ignored-region matching); HOTA always averages over 0.05-0.95.
        min_visibility: ground-truth rows less visible than this are ignored too (0: none).
    """
    if not 0.0 < iou <= 1.0:
        raise ValueError(f"iou: expected a threshold in (0, 1], got {iou}")
    if not 0.0 <= min_visibility <= 1.0:
        raise ValueError(f"min_visibility: expected a value in [0, 1], got {min_visibility}")
    if len(gt) == 0:
        raise ValueError(f"{gt.path}: the ground truth has no boxes")
    frames, ignored, dropped = _frames(gt, results, iou, min_visibility)
    mm = _motmetrics(frames, iou)
    hota = _hota(frames)
    mean = {k: float(np.mean(hota[k])) for k in HOTA_FIELDS}
    gt_ids = set().union(*(f.gt_ids.tolist() for f in frames))
    pred_ids = set().union(*(f.ids.tolist() for f in frames))
    return TrackingMetrics(
        mota=float(mm["mota"]), motp=1.0 - float(mm["motp"]), idf1=float(mm["idf1"]), idp=float(mm["idp"]),
        idr=float(mm["idr"]), precision=float(mm["precision"]), recall=float(mm["recall"]),
        id_switches=int(mm["num_switches"]), fragmentations=int(mm["num_fragmentations"]),
        mostly_tracked=int(mm["mostly_tracked"]), partially_tracked=int(mm["partially_tracked"]),
        mostly_lost=int(mm["mostly_lost"]), false_positives=int(mm["num_false_positives"]),
        misses=int(mm["num_misses"]), matches=int(mm["num_detections"]),
        hota=mean["HOTA"], deta=mean["DetA"], assa=mean["AssA"], detre=mean["DetRe"], detpr=mean["DetPr"],
        assre=mean["AssRe"], asspr=mean["AssPr"], loca=mean["LocA"],
        hota_per_alpha=[float(v) for v in hota["HOTA"]],
        iou=iou, min_visibility=min_visibility, frames=len(frames),
        gt_tracks=len(gt_ids), gt_boxes=sum(len(f.gt_ids) for f in frames),
        predicted_tracks=len(pred_ids), predicted_boxes=sum(len(f.ids) for f in frames),
        ignored_gt_boxes=ignored, dropped_predictions=dropped,
        gt_path=str(gt.path), results_path=str(results.path),
    )
