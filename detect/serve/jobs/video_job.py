"""A ``detect`` or ``track`` job: a model over an uploaded video, resumable at a checkpointed frame.

Files in the job's folder:

* ``predictions.jsonl`` — one line a processed frame (``detect predict``'s format), flushed each frame;
* ``tracks.txt`` — (track) MOTChallenge rows ``frame,id,x,y,w,h,score,-1,-1,-1``;
* ``annotated.webm`` — the frames with their detections drawn, VP8 (browsers play it), drawn
  from the JSON lines once they are complete (:mod:`~detect.serve.jobs.render`);
* ``summary.json`` — frames, detections, tracks, the settings and the files (written atomically).

A job resumed at frame ``N`` (its ``checkpoint_frame``) keeps the lines of the frames before
``N`` and drops any written after the checkpoint (they are predicted again, so no frame is
written twice), then appends. A track job resumes with a fresh tracker whose ids start above
the highest id written before: an object followed across the resume point gets a new id there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from classify.base.atomic import write_text_atomic
from detect.serve.jobs.progress import JobProgress
from detect.serve.jobs.render import read_records, render_video
from detect.serve.jobs.store import Job
from detect.tasks.predict import PredictOptions, run_predict

PREDICTIONS, TRACKS, VIDEO, SUMMARY = "predictions.jsonl", "tracks.txt", "annotated.webm", "summary.json"
#: the job parameters that go to the predict loop as they are
PREDICT_PARAMS = ("conf", "iou", "max_det", "classes", "stride")


def _complete_lines(path: Path) -> list[str]:
    """The lines of ``path`` that end with a newline (a line cut by a crash is dropped)."""
    return [line for line in path.read_text(encoding="utf-8").splitlines(keepends=True) if line.endswith("\n")]


def prepare_resume(out: Path, start_frame: int, stride: int, track: bool) -> tuple[int, int]:
    """Cut the job's files in ``out`` back to the frames before ``start_frame``; returns (frames
    kept, the first track id of the resumed run).

    Raises:
        ValueError: the kept lines are not exactly the frames ``0, stride...`` before ``start_frame``
            (a file lost or damaged: resuming would leave a gap).
    """
    if start_frame == 0:
        return 0, 0  # the predict loop replaces the files
    predictions = out / PREDICTIONS
    records = [(line, json.loads(line)) for line in (_complete_lines(predictions) if predictions.is_file() else [])]
    kept = [(line, record) for line, record in records if record["frame"] < start_frame]
    frames = [record["frame"] for _, record in kept]
    if frames != list(range(0, start_frame, stride)):
        raise ValueError(f"cannot resume at frame {start_frame}: {PREDICTIONS} holds {len(frames)} of the "
                         f"{len(range(0, start_frame, stride))} frames before it")
    write_text_atomic(predictions, "".join(line for line, _ in kept))
    if track:
        rows = _complete_lines(out / TRACKS) if (out / TRACKS).is_file() else []
        write_text_atomic(out / TRACKS, "".join(r for r in rows if int(r.split(",")[0]) <= start_frame))
    ids = [d["track_id"] for _, record in kept for d in record["detections"] if "track_id" in d]
    return len(kept), max(ids, default=-1) + 1


def predict_options(params: dict[str, Any], device: str, start_frame: int, first_track_id: int,
                    track: bool) -> PredictOptions:
    """The predict loop's options for a job: its parameters, no files but the JSON lines (and tracks)."""
    given = {k: params[k] for k in PREDICT_PARAMS if params.get(k) is not None}
    return PredictOptions(**given, device=device, track=track, annotate=False, save_txt=False, progress=False,
                          start_frame=start_frame, first_track_id=first_track_id)


def run_video_job(job: Job, model_path: Path, class_names: Sequence[str], device: str,
                  progress: JobProgress) -> dict[str, Any]:
    """Run (or resume) the detect/track ``job`` with the model file ``model_path``; returns the
    summary also written to ``summary.json``.

    Raises:
        FileNotFoundError: the input video is gone.
        ValueError: the video cannot be read to its end, or the files cannot be resumed.
        JobStopped: cancelled or stopped (files closed; the progress saved).
    """
    out, track, stride = Path(job.output_dir), job.kind == "track", int(job.params.get("stride") or 1)
    video = Path(job.input_path or "")
    if not video.is_file():
        raise FileNotFoundError(f"the job's input video is gone (expected the upload at {video.name})")
    out.mkdir(parents=True, exist_ok=True)
    kept, first_id = prepare_resume(out, job.checkpoint_frame, stride, track)
    options = predict_options(job.params, device, job.checkpoint_frame, first_id, track)
    run = run_predict(video, model_path, out, options,
                      on_result=lambda d, so_far: progress.frame_done(kept + so_far.processed, d.frame + stride))
    if run.failed:
        raise ValueError(run.failed[0][1])
    progress.save()  # every frame predicted: what is left is drawing the video
    frames = render_video(video, out / PREDICTIONS, out / VIDEO, class_names, stride, on_frame=progress.check)
    summary = _summary(job, out, frames, run.rate)
    write_text_atomic(out / SUMMARY, json.dumps(summary, indent=2) + "\n")
    return summary


def _summary(job: Job, out: Path, video_frames: int, rate: float) -> dict[str, Any]:
    records = read_records(out / PREDICTIONS)
    detections = [d for r in records.values() for d in r["detections"]]
    summary = {"job": job.id, "kind": job.kind, "model": job.model, "frames": len(records),
               "detections": len(detections), "video_frames": video_frames,
               "frames_per_second": round(rate, 3), "resumed_at_frame": job.checkpoint_frame or None,
               "settings": job.params, "files": [PREDICTIONS, VIDEO, SUMMARY]}
    if job.kind == "track":
        summary["tracks"] = len({d["track_id"] for d in detections})
        summary["files"].insert(1, TRACKS)
    return summary
