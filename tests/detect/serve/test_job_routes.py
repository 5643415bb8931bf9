"""``/v1/jobs`` through FastAPI's test client: submit, follow, fetch results and files, cancel, page;
every bad submission refused before a job exists, with what was expected and what came."""

from __future__ import annotations

import io
import json
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from job_clips import squares_clip
from PIL import Image

from detect.serve.errors import install_handlers
from detect.serve.jobs.routes import router
from detect.serve.jobs.runner import JobRunner
from detect.serve.jobs.store import JobStore
from detect.serve.models import ModelStore
from detect.serve.settings import ServiceSettings


@pytest.fixture
def runner(settings: ServiceSettings, models: ModelStore) -> Iterator[JobRunner]:
    runner = JobRunner(JobStore(settings.database()), settings, models, poll_seconds=0.05, checkpoint_seconds=0)
    runner.start()
    yield runner
    runner.stop(timeout=10)
    runner.store.close()


@pytest.fixture
def client(settings: ServiceSettings, models: ModelStore, runner: JobRunner) -> TestClient:
    app = FastAPI()
    install_handlers(app)
    app.include_router(router)
    app.state.settings, app.state.models, app.state.jobs = settings, models, runner
    return TestClient(app)


def post_video(client: TestClient, data: bytes, name: str = "clip.avi", **fields) -> dict:
    response = client.post("/v1/jobs", data={"kind": "detect"} | fields, files={"file": (name, data)})
    return {"status": response.status_code, **response.json(), "headers": response.headers}


def follow(client: TestClient, job_id: str, until: tuple[str, ...] = ("succeeded", "failed", "cancelled"),
           timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in until:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} is still {job['state']}")


def uploads_left(runner: JobRunner) -> list[str]:
    return sorted(p.name for p in runner.upload_dir.iterdir()) if runner.upload_dir.is_dir() else []


def test_a_track_job_from_submission_to_its_files(client: TestClient, clip: Path, runner: JobRunner) -> None:
    answer = post_video(client, clip.read_bytes(), kind="track", conf="0.3", max_det="5", classes="1, 3")
    assert answer["status"] == 201 and answer["headers"]["location"] == f"/v1/jobs/{answer['id']}"
    assert answer["state"] in ("queued", "running") and answer["total"] == 20
    assert answer["params"] == {"conf": 0.3, "max_det": 5, "classes": ["1", "3"]} and answer["model"] == "tiny"
    job = follow(client, answer["id"])
    assert job["state"] == "succeeded" and job["progress"] == 1.0 and job["processed"] == 20, job["error"]
    names = ["predictions.jsonl", "tracks.txt", "annotated.webm", "summary.json"]
    assert list(job["result_files"]) == names
    result = client.get(f"/v1/jobs/{job['id']}/result").json()
    assert result["summary"]["frames"] == 20 and result["metrics"] is None and result["files"] == job["result_files"]
    types = {}
    for name, url in result["files"].items():
        response = client.get(url)
        assert response.status_code == 200 and response.content, name
        types[name] = response.headers["content-type"]
    assert types == {"predictions.jsonl": "application/x-ndjson", "tracks.txt": "text/plain; charset=utf-8",
                     "annotated.webm": "video/webm", "summary.json": "application/json"}
    lines = client.get(result["files"]["predictions.jsonl"]).text.splitlines()
    assert [json.loads(line)["frame"] for line in lines] == list(range(20))
    missing = client.get(f"/v1/jobs/{job['id']}/result/../../jobs.sqlite")
    assert missing.status_code == 404
    missing = client.get(f"/v1/jobs/{job['id']}/result/metrics.json").json()["error"]
    assert missing["code"] == "file_not_found" and missing["expected"] == f"one of {', '.join(names)}"
    ended = client.delete(f"/v1/jobs/{job['id']}")
    assert ended.status_code == 409 and "already ended (succeeded)" in ended.json()["error"]["message"]
    assert uploads_left(runner) == []


def test_cancel_a_running_job_and_fetch_its_partial_lines(client: TestClient, clip: Path) -> None:
    answer = post_video(client, clip.read_bytes(), conf="0.3")
    follow(client, answer["id"], until=("running",))
    while client.get(f"/v1/jobs/{answer['id']}").json()["processed"] < 2:
        time.sleep(0.01)
    cancelled = client.delete(f"/v1/jobs/{answer['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    result = client.get(f"/v1/jobs/{answer['id']}/result")
    assert result.status_code == 409 and result.json()["error"]["message"].endswith("has no result: it is cancelled")
    files = follow(client, answer["id"])["result_files"]
    assert "predictions.jsonl" in files and "annotated.webm" not in files
    assert 2 <= len(client.get(files["predictions.jsonl"]).text.splitlines()) < 20


def test_a_running_job_has_no_result_yet_and_unknown_ids_are_404(client: TestClient, clip: Path) -> None:
    answer = post_video(client, squares_clip(clip.with_name("long.avi"), frames=20).read_bytes())
    early = client.get(f"/v1/jobs/{answer['id']}/result")
    if early.status_code == 409:  # (a fast machine may finish first)
        assert early.json()["error"]["got"] in ("queued", "running")
        assert client.get(f"/v1/jobs/{answer['id']}/result/predictions.jsonl").status_code == 409
    unknown = client.get("/v1/jobs/0123").json()["error"]
    assert (unknown["status"], unknown["code"], unknown["got"]) == (404, "job_not_found", "0123")
    assert client.delete("/v1/jobs/0123").status_code == 404
    follow(client, answer["id"])


def test_the_list_is_paged_newest_first_and_filtered_by_state(client: TestClient, clip: Path,
                                                              data_root: Path) -> None:
    first = client.post("/v1/jobs", data={"kind": "evaluate", "dataset": "scenes/coco", "split": "val"})
    assert first.status_code == 201, first.json()
    second = post_video(client, clip.read_bytes())
    client.delete(f"/v1/jobs/{second['id']}")
    page = client.get("/v1/jobs", params={"limit": 1}).json()
    assert page["total"] == 2 and (page["limit"], page["offset"]) == (1, 0) and page["jobs"][0]["id"] == second["id"]
    page = client.get("/v1/jobs", params={"limit": 1, "offset": 1}).json()
    assert [j["id"] for j in page["jobs"]] == [first.json()["id"]]
    assert [j["id"] for j in client.get("/v1/jobs", params={"state": "cancelled"}).json()["jobs"]] == [second["id"]]
    for bad in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"state": "done"}):
        assert client.get("/v1/jobs", params=bad).status_code == 422
    job = follow(client, first.json()["id"])
    assert job["state"] == "succeeded", job["error"]
    metrics = client.get(f"/v1/jobs/{job['id']}/result").json()
    assert metrics["summary"] is None and metrics["metrics"]["split"] == "val" and "AP50" in metrics["metrics"]["metrics"]
    assert "metrics.json" in metrics["files"] and client.get(metrics["files"]["metrics.md"]).status_code == 200


def png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def garbage_avi() -> bytes:
    """A RIFF/AVI header of the right size over random bytes: no frame to read."""
    body = b"AVI " + np.random.default_rng(0).bytes(2000)
    return b"RIFF" + struct.pack("<I", len(body)) + body


BAD_VIDEOS = [
    ("image", lambda clip: png(), 415, "got a PNG image"),
    ("text", lambda clip: b"just some notes\n", 415, "got text starting 'just some notes"),
    ("empty", lambda clip: b"", 400, "uploaded video is empty"),
    ("cut", lambda clip: clip.read_bytes()[: len(clip.read_bytes()) * 2 // 3], 422, "the AVI video is incomplete"),
    ("unreadable", lambda clip: garbage_avi(), 422, "cannot be read: OpenCV (FFmpeg) cannot read it"),
    ("too large", lambda clip: os.urandom(1_100_000), 413, "larger than this service accepts (1048576 bytes)"),
]


@pytest.mark.parametrize(("case", "make", "status", "says"), BAD_VIDEOS, ids=[c[0] for c in BAD_VIDEOS])
def test_bad_videos_are_refused_with_what_came_and_nothing_left(client: TestClient, clip: Path, runner: JobRunner,
                                                                case, make, status: int, says: str) -> None:
    answer = post_video(client, make(clip))
    error = answer["error"]
    assert answer["status"] == status == error["status"], error
    assert says in f"{error['message']} expected {error['expected']}, got {error['got']}"
    assert error["expected"]
    assert uploads_left(runner) == [] and client.get("/v1/jobs").json()["total"] == 0


BAD_FORMS = [
    ({"kind": "segment"}, True, 422, "kind: Input should be 'detect', 'track' or 'evaluate'"),
    ({"kind": "detect"}, False, 422, "a detect job needs a video in the form field 'file'"),
    ({"kind": "detect", "conf": "2"}, True, 422, "conf: Input should be less than or equal to 1"),
    ({"kind": "detect", "stride": "x"}, True, 422, "stride: Input should be a valid integer"),
    ({"kind": "detect", "classes": "cat"}, True, 422, "class 'cat' is not one the model predicts"),
    ({"kind": "detect", "colour": "red"}, True, 422, "colour: Extra inputs are not permitted"),
    ({"kind": "detect", "model": "huge"}, True, 404, "no model named 'huge'"),
    ({"kind": "detect", "dataset": "scenes/coco"}, True, 422, "dataset, split: for evaluate jobs only"),
    ({"kind": "evaluate"}, False, 422, "an evaluate job needs the field 'dataset'"),
    ({"kind": "evaluate", "dataset": "scenes/coco"}, True, 422, "an evaluate job takes no file"),
    ({"kind": "evaluate", "dataset": "../outside"}, False, 422, "climbs out with '..'"),
    ({"kind": "evaluate", "dataset": "/etc"}, False, 422, "the dataset path '/etc' is absolute"),
    ({"kind": "evaluate", "dataset": "escape"}, False, 422, "leads outside the data root"),
    ({"kind": "evaluate", "dataset": "scenes/coco", "split": "nope"}, False, 422, "has no split 'nope'"),
    ({"kind": "evaluate", "dataset": "scenes/coco", "stride": "2"}, False, 422, "stride: for detect/track jobs only"),
]


@pytest.mark.parametrize(("fields", "with_file", "status", "says"), BAD_FORMS, ids=[str(f[0]) for f in BAD_FORMS])
def test_bad_forms_are_refused_before_a_job_exists(client: TestClient, clip: Path, runner: JobRunner, tmp_path: Path,
                                                  data_root: Path, fields: dict, with_file: bool, status: int,
                                                  says: str) -> None:
    escape = data_root / "escape"
    if not escape.is_symlink():
        escape.symlink_to(tmp_path)
    files = {"file": ("clip.avi", clip.read_bytes())} if with_file else None
    response = client.post("/v1/jobs", data=fields, files=files)
    error = response.json()["error"]
    assert response.status_code == status == error["status"] and says in error["message"], error
    assert uploads_left(runner) == [] and client.get("/v1/jobs").json()["total"] == 0


def test_a_body_that_is_not_a_multipart_form_is_415(client: TestClient) -> None:
    response = client.post("/v1/jobs", json={"kind": "detect"})
    error = response.json()["error"]
    assert response.status_code == 415 and error["got"] == "Content-Type 'application/json'"
    assert "multipart/form-data" in error["expected"]
