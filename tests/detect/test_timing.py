"""The timing harness' statistics and call accounting (no timing is asserted)."""

from __future__ import annotations

import numpy as np
import pytest

from detect.evaluation.timing import measure, percentile, summarize


def test_percentile_matches_numpy_linear() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 50):
        samples = list(rng.uniform(1, 100, n))
        for q in (0, 10, 50, 90, 100):
            assert percentile(samples, q) == pytest.approx(np.percentile(samples, q))


def test_summary_per_image_and_throughput() -> None:
    stats = summarize([10.0, 20.0, 30.0, 40.0], batch_size=8)
    assert stats.median_ms == 25.0 and stats.mean_ms == 25.0 and stats.min_ms == 10.0
    assert stats.ms_per_image == 25.0 / 8 and stats.images_per_second == pytest.approx(320.0)


def test_measure_skips_warmup_and_counts_iterations() -> None:
    calls = []
    stats = measure(lambda: calls.append(1), batch_size=1, warmup=4, iterations=6)
    assert len(calls) == 10 and stats.iterations == 6


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="iterations >= 1"):
        measure(lambda: None, batch_size=1, iterations=0)
    with pytest.raises(ValueError, match="no timing samples"):
        summarize([], batch_size=1)
