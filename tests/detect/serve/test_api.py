"""The detection API against a real ``detect serve`` process on loopback: detect, annotate, models,
health, metrics, limits, the API key, batching under concurrency, back-pressure, and every class
of bad input answered 4xx with a message that says what was expected and what came."""

from __future__ import annotations

import asyncio
import io
import signal
import socket
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from bad_uploads import bad_images, encoded
from conftest import CLASSES
from PIL import Image

from detect.inference.predictor import Predictor
from detect.serve.models import MAX_DETECTIONS, SCORE_FLOOR
from detect.serve.process import ServiceProcess

KEY = "test-key-0123456789"


@pytest.fixture(scope="module")
def service(model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    with ServiceProcess(model_dir, tmp_path_factory.mktemp("data"), "--max-upload-mb", "1", "--max-wait-ms", "100",
                        "--max-batch", "4") as server:
        yield server


@pytest.fixture(scope="module")
def client(service: ServiceProcess):
    with httpx.Client(base_url=service.url, timeout=60) as http:
        yield http


def image_bytes(seed: int = 0, size: tuple[int, int] = (120, 90)) -> bytes:
    return encoded("PNG", size, seed)


def test_detect_matches_the_predictor_on_the_same_file(client: httpx.Client, model_dir: Path) -> None:
    data = image_bytes()
    answer = client.post("/v1/detect", params={"conf": 0.05, "max_det": 20}, files={"file": ("a.png", data)})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"]["name"] == "tiny" and len(body["model"]["version"]) == 12
    assert body["image"] == {"width": 120, "height": 90}
    assert set(body["timing"]) == {"decode_ms", "queue_ms", "preprocess_ms", "model_ms", "postprocess_ms", "total_ms"}
    predictor = Predictor(model_dir / "tiny.pt", conf=SCORE_FLOOR, max_det=MAX_DETECTIONS)
    [expected] = predictor(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    keep = expected.scores >= 0.05
    assert len(body["detections"]) == min(20, int(keep.sum()))
    for got, box, score, label in zip(body["detections"], expected.boxes[keep], expected.scores[keep],
                                      expected.labels[keep]):
        assert got["box"] == pytest.approx(box.tolist(), abs=0.02)
        assert got["score"] == pytest.approx(float(score), abs=1e-4)
        assert got["label"] == int(label) and got["name"] == CLASSES[int(label)]


def test_raw_body_and_multipart_give_the_same_answer(client: httpx.Client) -> None:
    data = image_bytes(1)
    raw = client.post("/v1/detect", params={"conf": 0.05}, content=data, headers={"Content-Type": "image/png"})
    multipart = client.post("/v1/detect", params={"conf": 0.05}, files={"file": ("x.bin", data)})
    assert raw.status_code == multipart.status_code == 200
    assert raw.json()["detections"] == multipart.json()["detections"]


def test_thresholds_classes_and_max_det_filter_the_answer(client: httpx.Client) -> None:
    data = image_bytes(2)
    every = client.post("/v1/detect", params={"conf": 0.01, "max_det": 300}, content=data).json()["detections"]
    assert every, "the tiny model should give some low-score boxes"
    few = client.post("/v1/detect", params={"conf": 0.01, "max_det": 2}, content=data).json()["detections"]
    assert few == every[:2]
    label = every[0]["name"]
    only = client.post("/v1/detect", params=[("conf", 0.01), ("classes", label)], content=data).json()["detections"]
    assert only and {d["name"] for d in only} == {label}
    both = client.post("/v1/detect", params={"conf": 0.01, "classes": f"{label},9"}, content=data).json()["detections"]
    assert {d["name"] for d in both} <= {label, "9"}
    high = client.post("/v1/detect", params={"conf": 0.99}, content=data).json()["detections"]
    assert all(d["score"] >= 0.99 for d in high)


def test_annotate_returns_a_jpeg_of_the_upload(client: httpx.Client) -> None:
    answer = client.post("/v1/detect", params={"annotate": "true", "conf": 0.05}, content=image_bytes(3))
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(answer.content)).size == (120, 90)
    assert int(answer.headers["x-detections"]) >= 0


def test_models_health_readiness_metrics_and_openapi(client: httpx.Client) -> None:
    models = client.get("/v1/models").json()
    [tiny] = models["models"]
    assert tiny["name"] == "tiny" and tiny["default"] and tiny["classes"] == CLASSES and tiny["backend"] == "torch"
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] and ready.json()["database"] == "ok"
    assert client.post("/v1/detect", content=image_bytes()).status_code == 200
    metrics = client.get("/metrics").text
    for name in ("detect_http_requests_total", "detect_http_request_seconds_bucket", "detect_batch_size_bucket",
                 "detect_queue_depth", "detect_jobs"):
        assert name in metrics
    schema = client.get("/openapi.json").json()
    assert {"/v1/detect", "/v1/models", "/v1/jobs", "/healthz", "/readyz", "/metrics"} <= set(schema["paths"])
    assert "multipart/form-data" in schema["paths"]["/v1/detect"]["post"]["requestBody"]["content"]
    assert client.get("/").status_code == 200


def test_concurrent_requests_are_batched(service: ServiceProcess) -> None:
    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=service.url, timeout=60) as http:
            answers = await asyncio.gather(*(http.post("/v1/detect", content=image_bytes(i)) for i in range(8)))
            return [a.json()["batch_size"] for a in answers if a.status_code == 200]

    sizes = asyncio.run(burst())
    assert len(sizes) == 8 and max(sizes) > 1 and max(sizes) <= 4


REQUEST_CASES = [
    # (name, request kwargs, status, words the message or "got" holds)
    ("unknown model", {"params": {"model": "tiyn"}}, 404, "did you mean 'tiny'"),
    ("conf above 1", {"params": {"conf": 2}}, 422, "conf"),
    ("conf below the floor", {"params": {"conf": 0}}, 422, "conf"),
    ("conf not a number", {"params": {"conf": "high"}}, 422, "conf"),
    ("iou zero", {"params": {"iou": 0}}, 422, "iou"),
    ("max_det zero", {"params": {"max_det": 0}}, 422, "max_det"),
    ("max_det too many", {"params": {"max_det": 100000}}, 422, "max_det"),
    ("unknown class", {"params": {"classes": "cat"}}, 422, "'cat' is not one the model predicts"),
    ("class index out of range", {"params": {"classes": "12"}}, 422, "out of range"),
    ("annotate not a boolean", {"params": {"annotate": "maybe"}}, 422, "annotate"),
]


@pytest.mark.parametrize(("name", "kwargs", "status", "says"), REQUEST_CASES, ids=[c[0] for c in REQUEST_CASES])
def test_bad_requests_are_4xx_with_a_message(client: httpx.Client, name: str, kwargs: dict, status: int,
                                             says: str) -> None:
    answer = client.post("/v1/detect", content=image_bytes(), **kwargs)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["status"] == status and says in f"{error['message']} {error['got']}"


@pytest.mark.parametrize("bad", bad_images(), ids=lambda b: b.name)
def test_bad_images_are_4xx_with_what_came(client: httpx.Client, bad) -> None:
    answer = client.post("/v1/detect", files={"file": ("upload.png", bad.body)})
    assert answer.status_code == bad.status, answer.text
    error = answer.json()["error"]
    assert bad.says in f"{error['message']} {error['got']}" and error["expected"]


def test_multipart_problems_are_4xx(client: httpx.Client) -> None:
    no_file = client.post("/v1/detect", files={"image": ("a.png", image_bytes())})
    assert no_file.status_code == 422 and "no file field 'file'" in no_file.json()["error"]["message"]
    text_field = client.post("/v1/detect", data={"file": "not a file"})
    assert text_field.status_code in (415, 422)
    broken = client.post("/v1/detect", content=b"--x\r\nnot multipart", headers={"Content-Type": "multipart/form-data"})
    assert 400 <= broken.status_code < 500 and broken.json()["error"]["message"]


def test_wrong_routes_and_methods_are_json_errors(client: httpx.Client) -> None:
    missing = client.get("/v1/nothing")
    assert missing.status_code == 404 and "/docs" in missing.json()["error"]["message"]
    assert client.get("/v1/detect").status_code == 405


def test_an_upload_over_the_limit_is_refused_before_it_is_read(client: httpx.Client, service: ServiceProcess) -> None:
    big = bytes(2 * 1024 * 1024)
    declared = client.post("/v1/detect", content=big)
    assert declared.status_code == 413 and "Content-Length" in declared.json()["error"]["got"]

    def chunks():
        for _ in range(64):
            yield bytes(64 * 1024)

    streamed = client.post("/v1/detect", content=chunks())  # chunked: no Content-Length
    assert streamed.status_code == 413 and "stopped" in streamed.json()["error"]["got"]
    assert client.get("/healthz").status_code == 200


def test_a_client_that_goes_away_is_dropped_from_the_queue(service: ServiceProcess, client: httpx.Client) -> None:
    async def impatient() -> None:
        async with httpx.AsyncClient(base_url=service.url, timeout=0.05) as http:
            await asyncio.gather(*(http.post("/v1/detect", content=image_bytes(i, (400, 300))) for i in range(12)),
                                 return_exceptions=True)

    asyncio.run(impatient())
    for _ in range(100):
        metrics = client.get("/metrics").text
        if 'reason="client_gone"' in metrics:
            break
        asyncio.run(asyncio.sleep(0.1))
    assert 'detect_requests_dropped_total{model="tiny",reason="client_gone"}' in metrics


def test_a_full_queue_answers_503_with_retry_after(model_dir: Path, tmp_path: Path) -> None:
    with ServiceProcess(model_dir, tmp_path, "--queue-size", "1", "--max-batch", "1", "--max-wait-ms", "0") as server:
        async def flood() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
                return await asyncio.gather(*(http.post("/v1/detect", content=image_bytes(i, (400, 300)))
                                              for i in range(10)))

        answers = asyncio.run(flood())
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {200, 503} and 503 in statuses and 200 in statuses
    refused = next(a for a in answers if a.status_code == 503)
    assert refused.headers["retry-after"] == "1" and "busy" in refused.json()["error"]["message"]


def test_the_api_key_guards_every_route_but_health(model_dir: Path, tmp_path: Path) -> None:
    with ServiceProcess(model_dir, tmp_path, env={"DETECT_SERVE_API_KEY": KEY}) as server, \
            httpx.Client(base_url=server.url, timeout=60) as http:
        for method, path in (("POST", "/v1/detect"), ("GET", "/v1/models"), ("GET", "/v1/jobs"), ("GET", "/metrics")):
            answer = http.request(method, path, content=image_bytes() if method == "POST" else None)
            assert answer.status_code == 401, (path, answer.text)
            assert answer.headers["www-authenticate"] == "Bearer"
        wrong = http.get("/v1/models", headers={"X-API-Key": "wrong-key-000"})
        assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "wrong API key"
        assert http.get("/v1/models", headers={"X-API-Key": KEY}).status_code == 200
        assert http.post("/v1/detect", content=image_bytes(), headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert http.get("/healthz").status_code == 200 and http.get("/readyz").status_code == 200
        assert http.get("/").status_code == 200  # the page itself; its calls carry the key


def test_a_port_in_use_is_one_clear_error(model_dir: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "detect", "serve", "--port", str(port), "--model-dir",
                               str(model_dir), "--default-model", "tiny", "--data-dir", str(tmp_path)],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and f"cannot listen on 127.0.0.1:{port}" in done.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_and_sigterm_stop_the_service_cleanly(model_dir: Path, tmp_path: Path, sig: int) -> None:
    server = ServiceProcess(model_dir, tmp_path)
    assert httpx.get(server.url + "healthz", timeout=30).status_code == 200
    code = server.stop(sig)
    log = server.log.read_text()
    assert code in (0, -sig, 128 + sig), log  # uvicorn re-raises the signal after its graceful shutdown
    assert "Application shutdown complete" in log and "Traceback" not in log


def wait_for_job(http: httpx.Client, job_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while (job := http.get(f"/v1/jobs/{job_id}").json())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    return job


def test_every_job_kind_on_a_real_server(model_dir: Path, data_root: Path, clip: Path, tmp_path: Path) -> None:
    with ServiceProcess(model_dir, tmp_path, "--data-root", str(data_root)) as server, \
            httpx.Client(base_url=server.url, timeout=60) as http:
        submitted = {kind: http.post("/v1/jobs", data={"kind": kind, "conf": "0.5"},
                                     files={"file": ("clip.avi", clip.read_bytes())}) for kind in ("detect", "track")}
        submitted["evaluate"] = http.post("/v1/jobs", data={"kind": "evaluate", "dataset": "scenes/coco",
                                                            "split": "val"})
        for kind, answer in submitted.items():
            assert answer.status_code == 201, answer.text
            job = wait_for_job(http, answer.json()["id"])
            assert job["state"] == "succeeded" and job["kind"] == kind, job
            result = http.get(f"/v1/jobs/{job['id']}/result").json()
            for name in result["files"]:
                assert http.get(f"/v1/jobs/{job['id']}/result/{name}").status_code == 200, (kind, name)
            if kind == "evaluate":
                assert result["metrics"]["split"] == "val" and 0.0 <= result["metrics"]["metrics"]["AP50"] <= 1.0
            else:
                lines = http.get(f"/v1/jobs/{job['id']}/result/predictions.jsonl").text.splitlines()
                assert len(lines) == 20 and job["processed"] == 20
        tracked = http.get(f"/v1/jobs/{submitted['track'].json()['id']}/result/tracks.txt").text
        assert tracked.strip(), "the track job wrote no MOT rows"
        listed = http.get("/v1/jobs", params={"state": "succeeded"}).json()
        assert listed["total"] == 3
