"""The service's routes but jobs: ``POST /v1/detect``, ``GET /v1/models``, the health checks and ``/metrics``.

Every collaborator comes from ``request.app.state`` (set up by :func:`detect.serve.app.create_app`):
``settings``, ``models`` (:class:`~detect.serve.models.ModelStore`), ``batchers`` (one
:class:`~detect.serve.batching.Batcher` a model), ``metrics`` and ``jobs`` (the job runner).
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import cv2
import numpy as np
from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from detect.inference.draw import draw_detections
from detect.serve.batching import Batched, QueueFull
from detect.serve.errors import ERROR_RESPONSES, ApiError
from detect.serve.models import MAX_DETECTIONS, SCORE_FLOOR, ServedModel, select
from detect.serve.schemas import (
    Detection,
    DetectResponse,
    Health,
    ImageSize,
    ModelInfo,
    ModelList,
    ModelRef,
    Readiness,
    Timing,
)
from detect.serve.uploads import EXPECTED_IMAGE, decode_upload

#: seconds a client is told to wait after a 503 (queue full)
RETRY_AFTER_SECONDS = 1

api = APIRouter(prefix="/v1")
health = APIRouter(tags=["health"])

_IMAGE_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    "image/*": {"schema": {"type": "string", "format": "binary"}},
}}}


@api.post("/detect", tags=["detect"], response_model=DetectResponse, responses=ERROR_RESPONSES | {
    200: {"content": {"image/jpeg": {}}, "description": "the detections, or with annotate=true the annotated image"},
    503: {"description": "the model's queue is full; retry after Retry-After seconds"}}, openapi_extra=_IMAGE_BODY)
async def detect(
    request: Request,
    model: Annotated[str | None, Query(description="served model (GET /v1/models); default: the default model")] = None,
    conf: Annotated[float, Query(ge=SCORE_FLOOR, le=1.0, description="score threshold")] = 0.25,
    iou: Annotated[float | None, Query(gt=0.0, le=1.0, description="NMS IoU threshold (default: the model's)")] = None,
    max_det: Annotated[int, Query(ge=1, le=MAX_DETECTIONS, description="detections kept at most")] = 100,
    classes: Annotated[list[str] | None, Query(description="keep only these classes (names or 0-based "
                                                           "indices; repeat or comma-separate)")] = None,
    annotate: Annotated[bool, Query(description="answer with the annotated JPEG instead of JSON")] = False,
) -> DetectResponse | Response:
    """Detect objects in one image: multipart field ``file`` or the raw image as the body."""
    start = time.perf_counter()
    state = request.app.state
    served = state.models.get(model)
    wanted = [c.strip() for item in classes for c in item.split(",") if c.strip()] if classes else None
    data = await _image_bytes(request)
    decode_start = time.perf_counter()
    image = await run_in_threadpool(decode_upload, data, state.settings.max_pixels)
    decoded = time.perf_counter() - decode_start
    batched = await _run_batched(request, served, image, served.default_iou if iou is None else iou)
    detections = select(batched.detections, served, conf=conf, max_det=max_det, classes=wanted)
    if annotate:
        jpeg = await run_in_threadpool(_jpeg, image, detections)
        return Response(jpeg, media_type="image/jpeg", headers={"X-Detections": str(len(detections))})
    t = batched.detections.timing
    return DetectResponse(
        model=_ref(served), image=ImageSize(width=image.shape[1], height=image.shape[0]),
        detections=[Detection(box=[round(float(v), 2) for v in box], score=round(float(s), 5), label=int(k),
                              name=served.class_names[int(k)])
                    for box, s, k in zip(detections.boxes, detections.scores, detections.labels)],
        batch_size=batched.batch_size,
        timing=Timing(decode_ms=_ms(decoded), queue_ms=_ms(batched.queued), preprocess_ms=_ms(t.preprocess),
                      model_ms=_ms(t.model), postprocess_ms=_ms(t.postprocess),
                      total_ms=_ms(time.perf_counter() - start)))


async def _image_bytes(request: Request) -> bytes:
    """The image of the request: the multipart field ``file``, or the whole body."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return await request.body()
    try:
        form = await request.form(max_files=1, max_fields=16)
    except Exception as exc:  # noqa: BLE001 - python-multipart's parse errors
        raise ApiError(400, f"the multipart body cannot be parsed ({exc})", expected="multipart/form-data with a "
                       "field 'file'", got=content_type) from None
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        fields = ", ".join(f"'{k}'" for k in form.keys()) or "no fields"
        raise ApiError(422, "the multipart body has no file field 'file'",
                       expected=f"a field 'file' holding {EXPECTED_IMAGE}", got=fields)
    return await upload.read()


async def _run_batched(request: Request, served: ServedModel, image: np.ndarray, iou: float) -> Batched:
    """The image through the model's batcher; dropped from the queue if the client goes away."""
    state = request.app.state
    try:
        pending = state.batchers[served.name].enqueue(image, iou)
    except QueueFull as exc:
        state.metrics.dropped.labels(served.name, "queue_full").inc()
        raise ApiError(503, f"the service is busy: {exc}; retry in {RETRY_AFTER_SECONDS} s",
                       headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
    disconnect = asyncio.ensure_future(_client_gone(request))
    try:
        await asyncio.wait({pending.future, disconnect}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        disconnect.cancel()
    if not pending.future.done():
        pending.abandoned = True
        pending.future.cancel()
        state.metrics.dropped.labels(served.name, "client_gone").inc()
        raise ApiError(499, "the client went away before its image reached the model", code="client_closed")
    try:
        return pending.future.result()
    except QueueFull as exc:
        raise ApiError(503, str(exc), headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from None


async def _client_gone(request: Request) -> None:
    """Return when the client disconnects: once the body is read, the server's next message is
    ``http.disconnect`` (no polling, which would wake the event loop for every waiting request)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _jpeg(image: np.ndarray, detections) -> bytes:
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(draw_detections(image, detections), cv2.COLOR_RGB2BGR),
                              [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ApiError(500, "the annotated image could not be encoded")
    return buffer.tobytes()


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _ref(served: ServedModel) -> ModelRef:
    return ModelRef(name=served.name, version=served.version, backend=served.backend)


@api.get("/models", tags=["models"], response_model=ModelList, responses=ERROR_RESPONSES)
async def models(request: Request) -> ModelList:
    """Every served model, its classes and defaults; the files that could not be loaded."""
    store = request.app.state.models
    infos = [ModelInfo(**_ref(m).model_dump(), file=m.path.name, size_bytes=m.path.stat().st_size,
                       default=m.name == store.default, classes=m.class_names, iou=m.default_iou)
             for m in store.models.values()]
    return ModelList(models=infos, failed=store.failed)


@health.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up (no key needed)."""
    return Health()


@health.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(request: Request, response: Response) -> Readiness:
    """Models loaded and the jobs database reachable (503 otherwise; no key needed)."""
    state = request.app.state
    database = "ok"
    try:
        await run_in_threadpool(state.jobs.store.ping)
    except Exception as exc:  # noqa: BLE001 - any database error makes the service not ready
        database = f"unreachable: {type(exc).__name__}: {exc}"
    ready = database == "ok" and bool(state.models.models)
    response.status_code = 200 if ready else 503
    return Readiness(ready=ready, models=state.models.names(), database=database)
