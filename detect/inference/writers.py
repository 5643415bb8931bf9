"""Where ``detect predict`` writes its detections, each file written as the run goes.

* :class:`JsonLinesWriter` — one JSON object a line per image or frame, flushed each time, so a
  crash keeps every finished line.
* :class:`CocoResultsWriter` — a COCO results list (``image_id`` = the image's file stem,
  ``category_id`` = label + 1, ``bbox`` xywh pixels) that ``detect eval --predictions`` scores.
* :class:`YoloTxtWriter` — ultralytics' ``save_txt`` + ``save_conf`` layout: ``labels/<stem>.txt``
  (``<stem>_<frame>.txt`` for video, frame 1-based), lines ``class cx cy w h conf`` normalised.
* :class:`MotWriter` — tracks in MOTChallenge results format ``frame,id,x,y,w,h,score,-1,-1,-1``.
* :class:`CropWriter` — each detected object cut out to ``crops/<class>/<stem>_<n>.jpg``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

import cv2
import numpy as np

from classify.base.atomic import write_text_atomic
from detect.inference.detections import Detections


def output_stem(detections: Detections) -> str:
    """The file stem of a result's outputs: the source's stem, ``_<frame>`` (1-based) for a video frame."""
    stem = Path(detections.source).stem or "image"
    return stem if detections.frame is None else f"{stem}_{detections.frame + 1}"


class _FlushedText:
    """A text file at ``path`` written as the run goes: each :meth:`_append` is flushed, so a
    crash keeps every finished line. ``append``: continue an existing file (a resumed run)
    instead of replacing it."""

    def __init__(self, path: Path, append: bool = False) -> None:
        self.path = Path(path)
        self._file: IO[str] = open(self.path, "a" if append else "w", encoding="utf-8")

    def _append(self, text: str) -> None:
        self._file.write(text)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class JsonLinesWriter(_FlushedText):
    """``path``: one :meth:`Detections.to_dict` a line, flushed after each."""

    def write(self, detections: Detections) -> None:
        self._append(json.dumps(detections.to_dict()) + "\n")


class CocoResultsWriter:
    """A COCO results JSON at ``path``, written (atomically) when closed."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.entries: list[dict] = []
        self._stems: dict[str, str] = {}

    def write(self, detections: Detections) -> None:
        stem = output_stem(detections)
        first = self._stems.setdefault(stem, detections.source)
        if first != detections.source:
            raise ValueError(f"{self.path}: images {first} and {detections.source} have the same file stem {stem!r}, "
                             "which COCO results use as image_id; rename one or predict them in separate runs")
        for box, score, label in zip(detections.xywh, detections.scores, detections.labels):
            self.entries.append({"image_id": stem, "category_id": int(label) + 1,
                                 "bbox": [float(v) for v in box], "score": float(score)})

    def close(self) -> None:
        write_text_atomic(self.path, json.dumps(self.entries) + "\n")


class YoloTxtWriter:
    """``folder/<stem>.txt`` a image with detections (none for an image without, like ultralytics)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def write(self, detections: Detections) -> None:
        if len(detections) == 0:
            return
        lines = [" ".join([str(int(label)), *(f"{float(v):.6g}" for v in (*box, score))])
                 for box, score, label in zip(detections.xywhn, detections.scores, detections.labels)]
        write_text_atomic(self.folder / f"{output_stem(detections)}.txt", "\n".join(lines) + "\n")

    def close(self) -> None:
        pass


class MotWriter(_FlushedText):
    """Tracks at ``path`` in MOTChallenge results format (frames 1-based), a frame flushed at a time."""

    def write(self, detections: Detections) -> None:
        if detections.track_ids is None or detections.frame is None:
            raise ValueError("MotWriter: expected tracked video detections (frame index and track ids)")
        self._append("".join(f"{detections.frame + 1},{int(track_id)},{x:.2f},{y:.2f},{w:.2f},{h:.2f},"
                             f"{float(score):.5f},-1,-1,-1\n"
                             for track_id, (x, y, w, h), score in zip(detections.track_ids, detections.xywh,
                                                                      detections.scores)))


class CropWriter:
    """Each detection cut out of its image (``uint8[H, W, 3]`` RGB) into ``folder/<class>/<stem>_<n>.jpg``."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def write(self, detections: Detections, image: np.ndarray) -> None:
        height, width = image.shape[:2]
        for n, (box, name) in enumerate(zip(detections.boxes, detections.names)):
            x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
            x2, y2 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
            if x2 <= x1 or y2 <= y1:
                continue
            folder = self.folder / _safe_name(name)
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{output_stem(detections)}_{n}.jpg"),
                        cv2.cvtColor(np.ascontiguousarray(image[y1:y2, x1:x2]), cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        pass


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "_"
