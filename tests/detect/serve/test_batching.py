"""Dynamic batching: concurrent images grouped into one model call, results back to their own
request, NMS thresholds never mixed in a batch, a full queue refused, abandoned requests skipped."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from detect.inference.predictor import Predictor
from detect.models.postprocess import PostprocessSettings
from detect.serve.batching import Batcher, QueueFull
from detect.serve.models import ServedModel


class Brightness(nn.Module):
    """One box an image whose score is the image's mean brightness; records every call's batch
    size and NMS threshold; blocks while ``gate`` is cleared; raises when ``fail`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.class_names = ["thing"]
        self.nms, self.calls = 0.5, []
        self.gate, self.fail = threading.Event(), False
        self.gate.set()

    def configure_postprocess(self, score_threshold=None, nms_threshold=None, max_detections=None) -> None:
        if nms_threshold is not None:
            self.nms = nms_threshold

    def postprocess_settings(self) -> PostprocessSettings:
        return PostprocessSettings(0.0, self.nms, 100)

    def forward(self, images: list[torch.Tensor], targets=None) -> list[dict[str, torch.Tensor]]:
        self.gate.wait(10)
        self.calls.append((len(images), self.nms))
        if self.fail:
            raise RuntimeError("the model broke")
        return [{"boxes": torch.tensor([[0.0, 0.0, 4.0, 4.0]]), "scores": image.mean().reshape(1),
                 "labels": torch.zeros(1, dtype=torch.int64)} for image in images]


def served(model: Brightness) -> ServedModel:
    return ServedModel("bright", Path("bright.pt"), "0", "torch", ["thing"], Predictor(model, conf=0.0))


def grey(value: int) -> np.ndarray:
    return np.full((8, 8, 3), value, np.uint8)


def run(coroutine):
    return asyncio.run(coroutine)


def test_concurrent_images_share_model_calls_and_get_their_own_results() -> None:
    model = Brightness()
    batcher = Batcher(served(model), max_batch=4, max_wait_ms=500, queue_size=64)
    batcher.start()

    async def main():
        return await asyncio.gather(*(batcher.submit(grey(10 * i), 0.5) for i in range(8)))

    try:
        results = run(main())
    finally:
        batcher.stop()
    assert [size for size, _ in model.calls] == [4, 4]
    for i, result in enumerate(results):
        assert result.batch_size == 4
        assert result.detections.scores[0] == pytest.approx(10 * i / 255, abs=1e-6)


def test_a_batch_never_mixes_nms_thresholds() -> None:
    model = Brightness()
    batcher = Batcher(served(model), max_batch=8, max_wait_ms=300, queue_size=64)
    batcher.start()

    async def main():
        return await asyncio.gather(*(batcher.submit(grey(i), 0.3 if i % 2 else 0.6) for i in range(6)))

    try:
        results = run(main())
    finally:
        batcher.stop()
    assert sorted(model.calls) == [(3, 0.3), (3, 0.6)]
    assert [r.batch_size for r in results] == [3] * 6


def test_a_full_queue_refuses_at_once_and_abandoned_requests_are_skipped() -> None:
    model = Brightness()
    batcher = Batcher(served(model), max_batch=1, max_wait_ms=0, queue_size=2)
    batcher.start()

    async def main():
        model.gate.clear()  # the model holds the first image; two more wait
        first = batcher.enqueue(grey(1), 0.5)
        while batcher.depth:
            await asyncio.sleep(0.01)
        gone, kept = batcher.enqueue(grey(2), 0.5), batcher.enqueue(grey(3), 0.5)
        with pytest.raises(QueueFull):
            batcher.enqueue(grey(4), 0.5)
        gone.abandoned = True
        model.gate.set()
        return await first.future, await kept.future

    try:
        first, kept = run(main())
    finally:
        batcher.stop()
    assert len(model.calls) == 2  # the abandoned image never reached the model
    assert kept.detections.scores[0] == pytest.approx(3 / 255, abs=1e-6)


def test_a_model_error_reaches_every_request_of_the_batch() -> None:
    model = Brightness()
    model.fail = True
    batcher = Batcher(served(model), max_batch=4, max_wait_ms=300, queue_size=8)
    batcher.start()

    async def main():
        return await asyncio.gather(*(batcher.submit(grey(i), 0.5) for i in range(3)), return_exceptions=True)

    try:
        errors = run(main())
    finally:
        batcher.stop()
    assert all(isinstance(e, RuntimeError) and "the model broke" in str(e) for e in errors)


def test_stopping_refuses_what_still_waits() -> None:
    model = Brightness()
    batcher = Batcher(served(model), max_batch=1, max_wait_ms=0, queue_size=8)
    batcher.start()

    async def main():
        model.gate.clear()
        running = batcher.enqueue(grey(1), 0.5)
        while batcher.depth:
            await asyncio.sleep(0.01)
        waiting = batcher.enqueue(grey(2), 0.5)
        stopper = asyncio.get_running_loop().run_in_executor(None, batcher.stop)
        await asyncio.sleep(0.05)
        model.gate.set()
        await stopper
        return await asyncio.gather(running.future, waiting.future, return_exceptions=True)

    done, refused = run(main())
    assert done.detections.scores[0] == pytest.approx(1 / 255, abs=1e-6)
    assert isinstance(refused, QueueFull)
    with pytest.raises(QueueFull):
        run(_enqueue_after_stop(batcher))


async def _enqueue_after_stop(batcher: Batcher) -> None:
    batcher.enqueue(grey(0), 0.5)
