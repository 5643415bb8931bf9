"""``detect predict`` / ``detect track``: a detector over images, a folder, a glob, a list of paths,
a video or (when asked) a camera or stream, with every output written as the run goes.

Outputs under ``out``:

* ``predictions.jsonl`` — one line an image or frame (frame index and timestamp for video);
* ``results.json`` — COCO results of the images (``detect eval GT --predictions`` scores it);
* ``labels/`` — YOLO txt, ultralytics' ``save_txt`` + ``save_conf`` layout;
* ``images/`` — annotated images (the source folder's layout kept), or ``<video stem>.<ext>`` —
  the annotated video;
* ``tracks.txt`` — MOTChallenge tracks (``--track``; ``detect eval-track`` scores it);
* ``crops/<class>/`` — each object cut out (``save_crops``);
* ``summary.json`` — counts, throughput, mean time by stage, failures, the settings.

An input that cannot be read is skipped with one line (file and reason) and the run goes on; the
summary's ``failed`` count makes the command exit 1.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch import nn
from tqdm import tqdm

from classify.base.atomic import write_text_atomic
from detect.inference.detections import STAGES, Detections
from detect.inference.draw import draw_detections
from detect.inference.predictor import Predictor
from detect.inference.sources import Source, resolve_source
from detect.inference.tracking import Tracker, TrackerConfig
from detect.inference.video import VIDEO_CODECS, VideoReader, VideoWriter, sigterm_raises
from detect.inference.writers import CocoResultsWriter, CropWriter, JsonLinesWriter, MotWriter, YoloTxtWriter


@dataclass
class PredictOptions:
    """How ``detect predict`` runs (see its ``--help``)."""

    conf: float = 0.25
    iou: float | None = None
    max_det: int | None = None
    classes: Sequence[str | int] | None = None
    image_size: int | None = None
    batch_size: int = 1
    stride: int = 1
    device: str = "cpu"
    backend: str | None = None
    weights: Path | None = None
    track: bool = False
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    stream: bool = False
    annotate: bool = True
    save_txt: bool = True
    save_crops: bool = False
    video_format: str | None = None
    progress: bool = True
    #: video only, to resume a run: start at this frame index and append to ``predictions.jsonl``
    #: and ``tracks.txt`` (the annotated video then holds the frames from ``start_frame`` on)
    start_frame: int = 0
    #: with ``track``, the id the first track gets (resuming: above the ids written before)
    first_track_id: int = 0


@dataclass
class PredictSummary:
    """What a run did: ``processed`` images or frames, ``failed`` inputs (source, reason), the
    detections found, wall-clock seconds, mean seconds by stage, and the files written."""

    source: str
    kind: str
    processed: int = 0
    detections: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    outputs: dict[str, str] = field(default_factory=dict)

    def add(self, detections: Detections) -> None:
        self.processed += 1
        self.detections += len(detections)
        for stage in STAGES:
            self.stage_seconds[stage] += getattr(detections.timing, stage)

    @property
    def rate(self) -> float:
        """Images (frames) a second, end to end."""
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        mean = {f"{k}_ms": round(1000 * v / max(self.processed, 1), 3) for k, v in self.stage_seconds.items()}
        return {"source": self.source, "kind": self.kind, "processed": self.processed, "detections": self.detections,
                "failed": [{"source": s, "reason": r} for s, r in self.failed], "seconds": round(self.seconds, 3),
                "per_second": round(self.rate, 3), "mean_time": mean, "outputs": self.outputs}

    def describe(self) -> str:
        unit = "frames" if self.kind != "images" else "images"
        mean = ", ".join(f"{k} {1000 * v / max(self.processed, 1):.1f}" for k, v in self.stage_seconds.items())
        lines = [f"{self.processed} {unit}, {self.detections} detections in {self.seconds:.1f} s "
                 f"({self.rate:.1f} {unit}/s); mean ms an image: {mean}"]
        if self.failed:
            lines.append(f"{len(self.failed)} input(s) failed (listed above and in summary.json)")
        lines += [f"  {name}: {path}" for name, path in self.outputs.items()]
        return "\n".join(lines)


#: called after each image or frame is written, with its detections and the run so far
OnResult = Callable[[Detections, PredictSummary], None]


def run_predict(source: str | Path | int, model: str | Path | nn.Module, out: Path,
                options: PredictOptions | None = None,
                on_result: OnResult | None = None) -> PredictSummary:
    """Run ``model`` (registry name, checkpoint, exported file or Detector module) over ``source``;
    see the module docstring. ``on_result(detections, summary)`` is called after each image or
    frame is written (progress for a caller: ``summary.processed``).

    Raises:
        FileNotFoundError, ValueError: a source or model that cannot be used at all (nothing written).
    """
    options = options or PredictOptions()
    found = resolve_source(source, allow_stream=options.stream)
    if options.track and found.kind == "images":
        raise ValueError(f"--track follows objects across video frames, but {source} is {len(found.images)} image(s); "
                         "give a video (or a camera/stream with --stream)")
    if options.start_frame and found.kind != "video":
        raise ValueError(f"start_frame resumes a video file, but {source} is {found.kind}")
    conf = min(options.conf, options.tracker.detector_conf) if options.track else options.conf
    predictor = Predictor(model, device=options.device, backend=options.backend, image_size=options.image_size,
                          conf=conf, iou=options.iou, max_det=options.max_det, classes=options.classes,
                          batch_size=options.batch_size, weights=options.weights)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = PredictSummary(str(source), found.kind)
    start = time.perf_counter()
    try:
        with sigterm_raises():  # `kill` ends the run through the writers' finally: files closed, video playable
            if found.kind == "images":
                _predict_images(predictor, found, out, options, summary, on_result)
            else:
                _predict_video(predictor, found, out, options, summary, on_result)
    finally:
        summary.seconds = time.perf_counter() - start
        summary.outputs["summary"] = str(out / "summary.json")
        write_text_atomic(out / "summary.json", json.dumps(summary.as_dict() | {"model": predictor.name,
                          "backend": predictor.backend, "settings": _settings(options, predictor)}, indent=2) + "\n")
    return summary


def _settings(options: PredictOptions, predictor: Predictor) -> dict[str, Any]:
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()}
    return settings | {"postprocess": asdict(predictor.settings)}


def _report(summary: PredictSummary, where: str, error: Exception) -> None:
    reason = str(error) or type(error).__name__
    summary.failed.append((where, reason))
    tqdm.write(f"skipped {where}: {reason}", file=sys.stderr)


def _predict_images(predictor: Predictor, found: Source, out: Path, options: PredictOptions,
                    summary: PredictSummary, on_result: OnResult | None) -> None:
    for skipped in found.skipped:
        _report(summary, str(skipped.path), ValueError(skipped.reason))
    jsonl, coco = JsonLinesWriter(out / "predictions.jsonl"), CocoResultsWriter(out / "results.json")
    writers: list[Any] = [jsonl, coco] + ([YoloTxtWriter(out / "labels")] if options.save_txt else [])
    crops = CropWriter(out / "crops") if options.save_crops else None
    root = _common_root(found.images)
    try:
        results = predictor.stream_with_images(found.images, on_error=lambda where, e: _report(summary, where, e))
        for detections, image in _progress(results, len(found.images), "images", options.progress):
            for writer in writers:
                writer.write(detections)
            if crops is not None:
                crops.write(detections, image)
            if options.annotate:
                _write_image(out / "images" / Path(detections.source).resolve().relative_to(root),
                             draw_detections(image, detections))
            summary.add(detections)
            if on_result is not None:
                on_result(detections, summary)
    finally:
        for writer in writers:
            writer.close()
    summary.outputs.update(predictions=str(jsonl.path), coco_results=str(coco.path))
    if options.save_txt:
        summary.outputs["labels"] = str(out / "labels")
    if options.annotate:
        summary.outputs["images"] = str(out / "images")
    if crops is not None:
        summary.outputs["crops"] = str(crops.folder)


def _predict_video(predictor: Predictor, found: Source, out: Path, options: PredictOptions,
                   summary: PredictSummary, on_result: OnResult | None) -> None:
    given = found.video if found.kind == "video" else found.stream
    reader = VideoReader(given, stride=options.stride, allow_stream=options.stream, start=options.start_frame)
    name = Path(str(found.video)).stem if found.kind == "video" else "stream"
    resumed = options.start_frame > 0
    writers: list[Any] = [JsonLinesWriter(out / "predictions.jsonl", append=resumed)]
    writers += [YoloTxtWriter(out / "labels")] if options.save_txt else []
    writers += [MotWriter(out / "tracks.txt", append=resumed)] if options.track else []
    crops = CropWriter(out / "crops") if options.save_crops else None
    tracker = Tracker(options.tracker, frame_rate=(reader.fps or 30.0) / options.stride,
                      first_id=options.first_track_id) if options.track else None
    video_path = out / f"{name}.{options.video_format or _video_format(found)}"
    video = VideoWriter(video_path, (reader.fps or 30.0) / options.stride, (reader.width, reader.height)) \
        if options.annotate else None
    try:
        with reader:
            results = predictor.stream_with_images(reader, prefetch=False)
            for detections, image in _progress(results, _frames_expected(reader), "frames", options.progress):
                detections.source = str(given)
                if tracker is not None:
                    detections = _track(tracker, detections, options.conf)
                for writer in writers:
                    writer.write(detections)
                if crops is not None:
                    crops.write(detections, image)
                if video is not None:
                    video.write(draw_detections(image, detections))
                summary.add(detections)
                if on_result is not None:
                    on_result(detections, summary)
    except ValueError as error:  # a truncated or corrupt video: every readable frame is done
        if summary.processed == 0:
            raise
        _report(summary, str(given), error)
    finally:
        for writer in writers:
            writer.close()
        if video is not None:
            video.close()
    summary.outputs["predictions"] = str(out / "predictions.jsonl")
    if options.save_txt:
        summary.outputs["labels"] = str(out / "labels")
    if options.track:
        summary.outputs["tracks"] = str(out / "tracks.txt")
    if video is not None:
        summary.outputs["video"] = str(video_path)


def _track(tracker: Tracker, detections: Detections, conf: float) -> Detections:
    """The frame's tracked detections; those under the user's ``conf`` (kept for the tracker's
    second stage) are not reported."""
    start = time.perf_counter()
    tracked = tracker.update(detections)
    tracked = tracked.select(tracked.scores >= conf)
    tracked.timing.postprocess += time.perf_counter() - start
    return tracked


def _video_format(found: Source) -> str:
    suffix = Path(str(found.video)).suffix.lower()
    return suffix.lstrip(".") if suffix in VIDEO_CODECS else "mp4"


def _frames_expected(reader: VideoReader) -> int | None:
    return None if not reader.frame_count else max(0, -(-(reader.frame_count - reader.start) // reader.stride))


def _progress(results: Iterable[Any], total: int | None, unit: str, enabled: bool) -> Iterator[Any]:
    yield from tqdm(results, total=total, unit=unit[:-1] if unit.endswith("s") else unit, desc="predict",
                    disable=not enabled, dynamic_ncols=True)


def _common_root(paths: Sequence[Path]) -> Path:
    parents = [p.resolve().parent for p in paths]
    if not parents:
        return Path(".")
    root = parents[0]
    while not all(p.is_relative_to(root) for p in parents):
        root = root.parent
    return root


def _write_image(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() not in (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"):
        path = path.with_suffix(".jpg")
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write the annotated image {path}")
