"""The job workers on SQLite and PostgreSQL: a video job to the end, cancel mid-run, graceful stop
and resume in a new runner, a killed worker process resumed from its checkpoint without a
duplicated line, recovery that fails what it cannot resume, an evaluation job, dataset paths
confined to the data root."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import pytest

from detect.serve.jobs.datasets import DatasetPathError, check_split, resolve_dataset
from detect.serve.jobs.runner import MAX_ATTEMPTS, JobRunner, new_job_id
from detect.serve.jobs.store import Job, JobStore
from detect.serve.models import ModelStore
from detect.serve.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[3]
FRAMES = 20
PARAMS = {"conf": 0.3, "max_det": 5}


@pytest.fixture
def make_runner(database_url: str, settings: ServiceSettings, models: ModelStore) -> Iterator[Callable[..., JobRunner]]:
    """``make_runner(**kw)``: a runner on a new connection to the test's database (stopped at the end)."""
    made: list[JobRunner] = []

    def make(**kw) -> JobRunner:
        runner = JobRunner(JobStore(database_url), settings, models, poll_seconds=0.05, **kw)
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.stop(timeout=10)
        runner.store.close()


def submit_video(runner: JobRunner, clip: Path, kind: str = "detect", **params) -> Job:
    """Queue a video job the way ``POST /v1/jobs`` does: the clip copied into the upload folder."""
    job_id = new_job_id()
    runner.upload_dir.mkdir(parents=True, exist_ok=True)
    upload = Path(shutil.copy(clip, runner.upload_dir / f"{job_id}{clip.suffix}"))
    return runner.submit(job_id, kind, "tiny", PARAMS | params, upload, total=FRAMES)


def wait_for(store: JobStore, job_id: str, done: Callable[[Job], bool], timeout: float = 120) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = store.get(job_id)
        if done(job):
            return job
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} never got there: {store.get(job_id)}")


def finished(job: Job) -> bool:
    return job.finished


def frames_of(path: Path) -> list[int]:
    return [json.loads(line)["frame"] for line in path.read_text().splitlines()]


def video_frames(path: Path) -> int:
    """Frames decoded from ``path`` (every one, not the container's count)."""
    capture, count = cv2.VideoCapture(str(path)), 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def test_a_video_job_runs_to_the_end_with_every_file(make_runner, clip: Path) -> None:
    runner = make_runner()
    runner.start()
    job = submit_video(runner, clip, "track")
    job = wait_for(runner.store, job.id, finished)
    assert job.state == "succeeded", job.error
    assert (job.processed, job.total, job.checkpoint_frame, job.progress, job.attempts) == (FRAMES, FRAMES, FRAMES, 1.0, 1)
    out = Path(job.output_dir)
    assert frames_of(out / "predictions.jsonl") == list(range(FRAMES))
    assert video_frames(out / "annotated.webm") == FRAMES
    summary = json.loads((out / "summary.json").read_text())
    assert summary == job.result and summary["frames"] == FRAMES and summary["tracks"] > 0
    assert summary["detections"] == sum(1 for _ in (out / "tracks.txt").read_text().splitlines())
    assert not Path(job.input_path).exists()  # the upload is deleted once its job has ended
    assert sorted(p.name for p in out.iterdir()) == ["annotated.webm", "predictions.jsonl", "summary.json", "tracks.txt"]


def test_a_cancelled_job_stops_within_a_frame_or_two_and_keeps_its_lines(make_runner, clip: Path) -> None:
    runner = make_runner(checkpoint_seconds=0)
    runner.start()
    job = submit_video(runner, clip)
    seen = wait_for(runner.store, job.id, lambda j: j.processed >= 3)  # progress is saved as the job goes
    assert seen.state == "running" and seen.eta_seconds() is not None and 0 < seen.progress < 1
    cancelled = runner.cancel(job.id)
    assert cancelled.state == "cancelled" and cancelled.finished_at is not None
    time.sleep(0.5)
    job = runner.store.get(job.id)
    lines = frames_of(Path(job.output_dir) / "predictions.jsonl")
    assert job.state == "cancelled" and lines == list(range(len(lines))) and len(lines) <= cancelled.processed + 2
    assert not (Path(job.output_dir) / "annotated.webm").exists() and not Path(job.input_path).exists()
    assert runner.cancel(job.id).state == "cancelled"  # a second cancel changes nothing
    after = wait_for(runner.store, submit_video(runner, clip).id, finished)  # the worker is free again
    assert after.state == "succeeded"


def test_a_graceful_stop_checkpoints_and_a_new_runner_resumes(make_runner, clip: Path) -> None:
    first = make_runner(checkpoint_seconds=30)  # only the stop saves the progress
    first.start()
    job = submit_video(first, clip, "track")
    out = Path(job.output_dir)
    wait_for(first.store, job.id, lambda j: out.joinpath("predictions.jsonl").is_file()
             and len(frames_of(out / "predictions.jsonl")) >= 5)
    first.stop()
    stopped = first.store.get(job.id)
    assert stopped.state == "queued" and stopped.attempts == 0  # a graceful stop gives its attempt back
    assert 5 <= stopped.checkpoint_frame < FRAMES and stopped.processed == stopped.checkpoint_frame
    assert frames_of(out / "predictions.jsonl") == list(range(stopped.checkpoint_frame))
    second = make_runner()
    assert second.recover() == []
    second.start()
    done = wait_for(second.store, job.id, finished)
    assert done.state == "succeeded" and done.attempts == 1, done.error
    assert frames_of(out / "predictions.jsonl") == list(range(FRAMES))
    assert video_frames(out / "annotated.webm") == FRAMES
    assert done.result["resumed_at_frame"] == stopped.checkpoint_frame


KILLED_WORKER = """
import os, signal, sys, time
from pathlib import Path
from detect.inference import writers
from detect.serve.jobs.runner import JobRunner
from detect.serve.jobs.store import JobStore
from detect.serve.models import ModelStore
from detect.serve.settings import ServiceSettings

url, model_dir, data_dir, kill_at = sys.argv[1:5]
write = writers.JsonLinesWriter.write

def write_then_die(self, detections):  # the line of frame kill_at is flushed, its checkpoint never saved
    write(self, detections)
    if detections.frame == int(kill_at):
        os.kill(os.getpid(), signal.SIGKILL)

writers.JsonLinesWriter.write = write_then_die
settings = ServiceSettings(model_dir=model_dir, default_model="tiny", data_dir=data_dir)
runner = JobRunner(JobStore(url), settings, ModelStore(Path(model_dir), "tiny"), checkpoint_seconds=0)
runner.start()
time.sleep(120)
"""


@pytest.mark.slow
def test_a_killed_worker_is_resumed_from_its_checkpoint_without_a_duplicated_line(
        make_runner, clip: Path, database_url: str, settings: ServiceSettings, model_dir: Path) -> None:
    runner = make_runner()
    job = submit_video(runner, clip, "track")
    env = os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    killed = subprocess.run([sys.executable, "-c", KILLED_WORKER, database_url, str(model_dir), str(settings.data_dir),
                             "7"], check=False, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    left = runner.store.get(job.id)
    out = Path(left.output_dir)
    assert left.state == "running" and left.checkpoint_frame == 7 and frames_of(out / "predictions.jsonl")[-1] == 7
    [recovered] = runner.recover()
    assert recovered.state == "queued" and recovered.attempts == 1
    runner.start()
    done = wait_for(runner.store, job.id, finished)
    assert done.state == "succeeded" and done.attempts == 2, done.error
    assert frames_of(out / "predictions.jsonl") == list(range(FRAMES))  # frame 7 predicted again, written once
    assert video_frames(out / "annotated.webm") == FRAMES
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    before = {d["track_id"] for r in records[:7] for d in r["detections"]}
    after = {d["track_id"] for r in records[7:] for d in r["detections"]}
    assert before and after and min(after) > max(before)  # a fresh tracker, ids above those written
    rows = [tuple(line.split(",")[:2]) for line in (out / "tracks.txt").read_text().splitlines()]
    assert len(rows) == len(set(rows)) == done.result["detections"]


def test_recovery_fails_what_it_cannot_resume_and_says_why(make_runner, clip: Path) -> None:
    runner = make_runner()
    gone, tired = submit_video(runner, clip), submit_video(runner, clip)
    for _ in (gone, tired):  # a dead server's running jobs
        runner.store.claim()
    runner.store.update(gone.id, checkpoint_frame=6, processed=6)
    runner.store.update(tired.id, checkpoint_frame=4, attempts=MAX_ATTEMPTS)
    Path(gone.input_path).unlink()
    evaluation = runner.submit(new_job_id(), "evaluate", "tiny", {"dataset": "scenes/coco"})
    runner.store.claim()
    by_id = {job.id: job for job in runner.recover()}
    assert by_id[gone.id].state == "failed" and by_id[gone.id].error == (
        "interrupted by a server restart at frame 6; its input video is gone, so it cannot be resumed")
    assert by_id[tired.id].state == "failed" and by_id[tired.id].error.startswith(
        f"interrupted by a server restart at frame 4; it was started {MAX_ATTEMPTS} times")
    assert not Path(tired.input_path).exists()
    assert by_id[evaluation.id].state == "queued"  # evaluations rerun from the start
    assert runner.store.interrupted() == []


def test_a_job_whose_input_is_gone_fails_with_the_reason(make_runner, clip: Path) -> None:
    runner = make_runner()
    job = submit_video(runner, clip)
    Path(job.input_path).unlink()
    runner.start()
    job = wait_for(runner.store, job.id, finished)
    assert job.state == "failed" and job.error == f"the job's input video is gone (expected the upload at {job.id}.avi)"


def test_an_evaluation_job_scores_a_dataset_under_the_data_root(make_runner) -> None:
    runner = make_runner()
    runner.start()
    job = runner.submit(new_job_id(), "evaluate", "tiny", {"dataset": "scenes/coco", "split": "val"})
    job = wait_for(runner.store, job.id, finished)
    assert job.state == "succeeded", job.error
    assert job.result["split"] == "val" and job.result["images"] == job.processed > 0
    assert {"AP", "AP50", "precision", "recall"} <= set(job.result["metrics"])
    out = Path(job.output_dir)
    assert json.loads((out / "metrics.json").read_text())["coco"]["AP"] == job.result["metrics"]["AP"]
    assert {p.name for p in out.iterdir()} >= {"metrics.json", "metrics.md", "pr_curves.png", "confusion_matrix.png"}


@pytest.mark.parametrize(("name", "says"), [
    ("../outside", "climbs out with '..'"),
    ("scenes/../../outside", "climbs out with '..'"),
    ("/etc", "is absolute"),
    ("C:\\data", "is absolute"),
    ("escape/coco", "leads outside the data root"),
    ("", "empty"),
    ("nothing/here", "no dataset 'nothing/here' under the data root"),
])
def test_dataset_paths_are_confined_to_the_data_root(tmp_path: Path, data_root: Path, name: str, says: str) -> None:
    root = tmp_path / "root"
    (root / "inside").mkdir(parents=True)
    (tmp_path / "outside" / "coco").mkdir(parents=True)
    (root / "escape").symlink_to(tmp_path / "outside")
    (root / "alias").symlink_to(root / "inside")  # a link that stays inside is fine
    with pytest.raises(DatasetPathError, match=says):
        resolve_dataset(root, name)
    assert resolve_dataset(root, "alias") == (root / "inside").resolve()


def test_a_missing_split_or_a_non_dataset_is_named(data_root: Path) -> None:
    coco = resolve_dataset(data_root, "scenes/coco")
    assert check_split(coco, "scenes/coco", "val") == "val"
    with pytest.raises(DatasetPathError, match="has no split 'nope'") as error:
        check_split(coco, "scenes/coco", "nope")
    assert "val" in error.value.expected
    with pytest.raises(DatasetPathError, match="'scenes' is not a dataset") as error:
        check_split(data_root / "scenes" / "coco" / "images", "scenes", None)
    assert str(data_root) not in str(error.value)
