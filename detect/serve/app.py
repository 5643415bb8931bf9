"""The FastAPI application: :func:`create_app` assembles settings, models, batchers, jobs and routes.

    app = create_app(load_settings())      # uvicorn.run(app) serves it; `detect serve` does both

At start (the app's lifespan) the models of ``settings.model_dir`` are loaded (unless given), one batcher thread
a model is started, the jobs database is opened (SQLite or PostgreSQL), jobs a crash left
unfinished are resumed or failed, and the job workers start. At shutdown (Ctrl-C, SIGTERM) running
jobs checkpoint and the batchers finish their batch.
"""

from __future__ import annotations

import importlib.metadata
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import torch
from fastapi import Depends, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from detect.serve.batching import Batcher
from detect.serve.errors import install_handlers
from detect.serve.jobs.routes import router as jobs_router
from detect.serve.jobs.runner import JobRunner
from detect.serve.jobs.store import JobStore
from detect.serve.limits import BodyLimit
from detect.serve.metrics import CONTENT_TYPE, ServiceMetrics
from detect.serve.models import ModelStore
from detect.serve.routes import api, health
from detect.serve.security import require_api_key
from detect.serve.settings import ServiceSettings

log = logging.getLogger("detect.serve")
STATIC = Path(__file__).resolve().parent / "static"
#: a digit-scenes test image (never trained on), for the curl example printed at start
EXAMPLE_IMAGE = STATIC / "example.jpg"
DESCRIPTION = """Object detection over HTTP: `POST /v1/detect` an image, `POST /v1/jobs` a video
(detect or track) or an evaluation, then follow the job. Errors are JSON:
`{"error": {"status", "code", "message", "expected", "got"}}`."""


def create_app(settings: ServiceSettings, models: ModelStore | None = None) -> FastAPI:
    """The service for ``settings``; ``models`` already loaded, or loaded when the app starts."""
    app = FastAPI(title="detect-pipeline service", version=importlib.metadata.version("detect-pipeline"),
                  description=DESCRIPTION, lifespan=_lifespan)
    app.state.settings, app.state.models = settings, models
    app.state.metrics = ServiceMetrics()
    install_handlers(app)
    protected = [Depends(require_api_key)]
    app.include_router(api, dependencies=protected)
    app.include_router(jobs_router, dependencies=protected)
    app.include_router(health)

    @app.get("/metrics", tags=["health"], dependencies=protected, response_class=Response,
             responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}})
    async def metrics(request: Request) -> Response:
        """Prometheus metrics: requests, latency, batch sizes, queue depth, jobs by state."""
        state = request.app.state
        depths = {name: b.depth for name, b in state.batchers.items()}
        body = await run_in_threadpool(state.metrics.render, depths, state.jobs.store.counts_by_state)
        return Response(body, media_type=CONTENT_TYPE)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"])
    app.add_middleware(BodyLimit, limit_for=lambda path: settings.max_video_bytes if path.startswith("/v1/jobs")
                       else settings.max_upload_bytes)
    app.add_middleware(RequestMetrics, metrics=app.state.metrics)  # outermost: counts the refused bodies too
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: ServiceSettings = app.state.settings
    if settings.threads:
        torch.set_num_threads(settings.threads)
    models = app.state.models or await run_in_threadpool(ModelStore, settings.model_dir, settings.default_model,
                                                         settings.device)
    metrics: ServiceMetrics = app.state.metrics
    batchers = {name: Batcher(model, max_batch=settings.max_batch, max_wait_ms=settings.max_wait_ms,
                              queue_size=settings.queue_size, on_batch=metrics.observe_batch)
                for name, model in models.models.items()}
    for batcher in batchers.values():
        batcher.start()
    store = await run_in_threadpool(JobStore, settings.database())
    jobs = JobRunner(store, settings, models)
    await run_in_threadpool(jobs.recover)
    jobs.start()
    app.state.models, app.state.batchers, app.state.jobs = models, batchers, jobs
    log.info("serving %s (default %s) on %s", ", ".join(models.names()), models.default, settings.device)
    if url := getattr(app.state, "url", None):  # set by detect serve, which knows the socket
        print(f"detect serve: ready at {url}  (models: {', '.join(models.names())}; API docs at {url}docs)\n"
              f"try: curl -F file=@{EXAMPLE_IMAGE} '{url}v1/detect?conf=0.3'", flush=True)
    try:
        yield
    finally:
        await run_in_threadpool(jobs.stop)
        for batcher in batchers.values():
            await run_in_threadpool(batcher.stop)
        store.close()


class RequestMetrics:
    """Count and time every request by route template and status (ASGI middleware)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def recorded(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recorded)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
