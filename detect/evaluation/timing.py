"""Latency measurement: warm-up skipped, device synchronised, robust statistics.

Follows detectron2's ``inference_on_dataset`` timing: the first calls (cuDNN autotuning, lazy
allocation, thread-pool start) are excluded, and CUDA work is synchronised before the clock is
read so asynchronous kernels are counted where they run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from classify.base.device import synchronize


@dataclass(frozen=True)
class LatencyStats:
    """Per-call latency of ``batch_size`` images, in milliseconds."""

    batch_size: int
    iterations: int
    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float

    @property
    def ms_per_image(self) -> float:
        return self.median_ms / self.batch_size

    @property
    def images_per_second(self) -> float:
        return 1000.0 * self.batch_size / self.median_ms


def percentile(samples: list[float], q: float) -> float:
    """Linear-interpolated percentile, ``q`` in [0, 100]."""
    ordered = sorted(samples)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(samples_ms: list[float], batch_size: int) -> LatencyStats:
    if not samples_ms:
        raise ValueError("no timing samples to summarise")
    return LatencyStats(batch_size, len(samples_ms), statistics.median(samples_ms),
                        percentile(samples_ms, 90), statistics.fmean(samples_ms), min(samples_ms))


def time_call(fn: Callable[[], object], device: torch.device | str = "cpu") -> float:
    """Milliseconds one call of ``fn`` takes, the device synchronised before the clock is read."""
    t0 = time.perf_counter()
    fn()
    synchronize(device)
    return (time.perf_counter() - t0) * 1000.0


def measure(fn: Callable[[], object], *, batch_size: int, warmup: int = 3, iterations: int = 20,
            min_seconds: float = 0.0, device: torch.device | str = "cpu") -> LatencyStats:
    """Time ``fn()`` (one batch of ``batch_size`` images) after ``warmup`` untimed calls.

    Runs at least ``iterations`` timed calls, more until ``min_seconds`` have passed.
    """
    if warmup < 0 or iterations < 1:
        raise ValueError(f"expected warmup >= 0 and iterations >= 1, got {warmup} and {iterations}")
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        synchronize(device)
        samples: list[float] = []
        started = time.perf_counter()
        while len(samples) < iterations or time.perf_counter() - started < min_seconds:
            samples.append(time_call(fn, device))
    return summarize(samples, batch_size)
