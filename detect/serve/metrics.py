"""Prometheus metrics of the service (``GET /metrics``), with ``prometheus-client``.

Requests by route, method and status; latency by route; model calls by batch size and time; images
waiting by model; requests dropped (queue full, client gone); jobs by state (read from the jobs
database when scraped). Routes are labelled by their template (``/v1/jobs/{job_id}``), so the
label set stays small whatever the ids.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

disable_created_metrics()  # no *_created series: one line a counter, as most exporters

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128, 256)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServiceMetrics:
    """The service's metrics in a registry of their own (one an app, so tests can build several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("detect_http_requests", "HTTP requests answered", ["route", "method", "status"],
                                registry=r)
        self.latency = Histogram("detect_http_request_seconds", "time to answer a request", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("detect_batch_size", "images a model call", ["model"], buckets=BATCH_BUCKETS,
                                    registry=r)
        self.model_seconds = Histogram("detect_model_call_seconds", "time of one model call (a batch)", ["model"],
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("detect_queue_depth", "images waiting for a model", ["model"], registry=r)
        self.dropped = Counter("detect_requests_dropped", "detect requests not run", ["model", "reason"], registry=r)
        self.jobs = Gauge("detect_jobs", "jobs in the database by state", ["state"], registry=r)

    def observe_batch(self, model: str, size: int, seconds: float) -> None:
        self.batch_size.labels(model).observe(size)
        self.model_seconds.labels(model).observe(seconds)

    def render(self, queue_depths: Mapping[str, int], job_counts: Callable[[], Mapping[str, int]] | None) -> bytes:
        """The text exposition, with the gauges read now."""
        for model, depth in queue_depths.items():
            self.queue_depth.labels(model).set(depth)
        if job_counts is not None:
            for state, count in job_counts().items():
                self.jobs.labels(state).set(count)
        return generate_latest(self.registry)
