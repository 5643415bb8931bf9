"""The annotated video of a finished detect/track job, drawn from its JSON lines.

The job's detections are in ``predictions.jsonl`` (one line a processed frame); the video is drawn
from them and the input video once the detections are complete, so a job resumed after a crash
(whose first run left no playable video: a killed VP8 muxer loses its buffered clusters) still
gets one video covering every frame. Browsers play VP8 ``.webm``; they do not play mp4v.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from detect.inference.detections import Detections
from detect.inference.draw import draw_detections
from detect.inference.video import VideoReader, VideoWriter


def read_records(predictions: Path) -> dict[int, dict[str, Any]]:
    """The lines of ``predictions.jsonl`` by frame index."""
    with open(predictions, encoding="utf-8") as f:
        return {record["frame"]: record for record in map(json.loads, f)}


def render_video(video: Path, predictions: Path, out: Path, class_names: Sequence[str], stride: int = 1,
                 on_frame: Callable[[], None] | None = None) -> int:
    """Write ``out`` (``.webm``, VP8): each kept frame of ``video`` with its detections drawn.

    Frames ``0, stride, 2 * stride...`` are drawn with the line of ``predictions`` of their index
    (a frame without one is written as it is); the frame rate is the input's divided by
    ``stride``. Written to a temporary file in ``out``'s folder and renamed when complete, so
    ``out`` is never a partial video. ``on_frame()`` is called before each frame (it may raise
    to stop; the temporary file is then removed). Returns the number of frames written.
    """
    records = read_records(predictions)
    partial = out.with_name(f".{out.stem}.partial{out.suffix}")
    try:
        with VideoReader(video, stride=stride) as reader, \
                VideoWriter(partial, (reader.fps or 30.0) / stride, (reader.width, reader.height)) as writer:
            for frame in reader:
                if on_frame is not None:
                    on_frame()
                record = records.get(frame.index)
                image = frame.image if record is None else draw_detections(
                    frame.image, Detections.from_dict(record, class_names))
                writer.write(image)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return writer.frames_written
