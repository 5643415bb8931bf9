"""A real ``detect serve`` process, stopped mid-job twice on the same data folder: killed with
``kill -9`` (the job is resumed at the next start, never left running) and stopped with SIGTERM (the
job checkpoints and waits in the queue); the third start finishes it, its results whole."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import httpx
import pytest

from detect.serve.jobs.store import Job, JobStore
from detect.serve.process import ServiceProcess


def wait_until(condition: Callable[[], bool], timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def lines_written(job: Job) -> int:
    predictions = Path(job.output_dir) / "predictions.jsonl"
    return predictions.read_text().count("\n") if predictions.is_file() else 0


@pytest.mark.slow
def test_a_server_killed_then_terminated_mid_job_resumes_it_each_time(tmp_path: Path, model_dir: Path,
                                                                       clip: Path) -> None:
    data_dir = tmp_path / "service"
    server = ServiceProcess(model_dir, data_dir)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        submitted = client.post("v1/jobs", data={"kind": "track", "conf": "0.3", "max_det": "5"},
                                files={"file": ("clip.avi", clip.read_bytes())})
    assert submitted.status_code == 201, submitted.text
    store = JobStore(f"sqlite:///{data_dir.resolve() / 'jobs.sqlite'}")  # the server's own database, read alongside
    job_id = submitted.json()["id"]
    wait_until(lambda: lines_written(store.get(job_id)) >= 3, what="the first frames")
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    killed = store.get(job_id)
    assert killed.state == "running" and 3 <= lines_written(killed) < 20, "the job was not caught mid-run"

    server = ServiceProcess(model_dir, data_dir)  # recovers the job, resumes it at its checkpoint
    wait_until(lambda: store.get(job_id).attempts == 2 and lines_written(store.get(job_id)) >= 3, what="the resume")
    assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after its shutdown
    terminated = store.get(job_id)
    assert terminated.state == "queued" and terminated.attempts == 1
    assert lines_written(terminated) == terminated.checkpoint_frame == terminated.processed

    with ServiceProcess(model_dir, data_dir) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        wait_until(lambda: store.get(job_id).finished, what="the end of the job")
        job = client.get(f"v1/jobs/{job_id}").json()
        assert job["state"] == "succeeded" and job["attempts"] == 2, job
        files = job["result_files"]
        frames = [json.loads(line)["frame"] for line in client.get(files["predictions.jsonl"]).text.splitlines()]
        assert frames == list(range(20))
        video = tmp_path / "annotated.webm"
        video.write_bytes(client.get(files["annotated.webm"]).content)
        capture, count = cv2.VideoCapture(str(video)), 0
        while capture.read()[0]:
            count += 1
        assert count == 20
        assert client.get("v1/jobs", params={"state": "running"}).json()["total"] == 0
    store.close()
