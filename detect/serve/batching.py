"""Dynamic batching: concurrent requests for one model grouped into one model call.

Each served model has a :class:`Batcher`: a bounded queue of decoded images and one thread that
empties it. The thread takes the oldest waiting image, then up to ``max_batch - 1`` more that
share its NMS threshold, waiting at most ``max_wait_ms`` (from the moment it took the first) for
them to arrive, and runs the model once on the group off the event loop. A full queue refuses
at once (:class:`QueueFull`, answered 503 with ``Retry-After``); a request whose client went away
is marked abandoned and skipped when its turn comes.

    batcher = Batcher(model, max_batch=8, max_wait_ms=10, queue_size=64)
    batcher.start()
    batched = await batcher.submit(image, iou=0.5)      # .detections, .queued, .batch_size
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from detect.inference.detections import Detections
from detect.inference.predictor import Decoded
from detect.models.postprocess import configure_postprocess
from detect.serve.models import ServedModel

log = logging.getLogger("detect.serve")

#: called after each model call with the model's name, the batch size and the call's seconds
OnBatch = Callable[[str, int, float], None]


@dataclass
class Batched:
    """One image's detections, the seconds it waited in the queue and the size of its batch."""

    detections: Detections
    queued: float
    batch_size: int


class QueueFull(Exception):
    """The model's queue holds ``queue_size`` images already."""


@dataclass
class _Pending:
    image: np.ndarray
    iou: float
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)
    abandoned: bool = False

    def resolve(self, result: object = None, error: BaseException | None = None) -> None:
        def settle() -> None:
            if self.future.done():
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(result)

        self.loop.call_soon_threadsafe(settle)


class Batcher:
    """The queue and model thread of one served model (see the module docstring)."""

    def __init__(self, model: ServedModel, *, max_batch: int, max_wait_ms: float, queue_size: int,
                 on_batch: OnBatch | None = None) -> None:
        self.model, self.max_batch, self.max_wait = model, max_batch, max_wait_ms / 1000
        self.queue_size, self.on_batch = queue_size, on_batch
        self._queue: deque[_Pending] = deque()
        self._ready = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=f"batcher-{model.name}", daemon=True)

    @property
    def depth(self) -> int:
        """Images waiting for the model."""
        return len(self._queue)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in the model, refuse what still waits, and end the thread."""
        with self._ready:
            self._stopped = True
            waiting = list(self._queue)
            self._queue.clear()
            self._ready.notify_all()
        for pending in waiting:
            pending.resolve(error=QueueFull("the service is shutting down"))
        if self._thread.is_alive():
            self._thread.join(timeout)

    def enqueue(self, image: np.ndarray, iou: float) -> _Pending:
        """Queue ``image`` (``uint8[H, W, 3]`` RGB) for the model with NMS at ``iou``; call from the event loop.

        Raises:
            QueueFull: ``queue_size`` images wait already (or the batcher is stopped).
        """
        pending = _Pending(image, iou, asyncio.get_running_loop(), asyncio.get_running_loop().create_future())
        with self._ready:
            if self._stopped or len(self._queue) >= self.queue_size:
                raise QueueFull(f"{len(self._queue)} images wait for model {self.model.name}")
            self._queue.append(pending)
            self._ready.notify()
        return pending

    async def submit(self, image: np.ndarray, iou: float) -> Batched:
        """The image's detections (see :meth:`enqueue`)."""
        pending = self.enqueue(image, iou)
        return await pending.future

    # ------------------------------------------------------------------ the model thread

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._call_model(batch)

    def _next_batch(self) -> list[_Pending] | None:
        with self._ready:
            first = None
            while first is None:
                while not self._queue and not self._stopped:
                    self._ready.wait()
                if self._stopped:
                    return None
                first = self._queue.popleft()
                if first.abandoned:
                    first = None
            batch, deadline = [first], time.perf_counter() + self.max_wait
            while len(batch) < self.max_batch:
                self._take_matching(batch)
                remaining = deadline - time.perf_counter()
                if len(batch) >= self.max_batch or remaining <= 0 or self._stopped:
                    break
                self._ready.wait(remaining)
            return batch

    def _take_matching(self, batch: list[_Pending]) -> None:
        """Move waiting images with the batch's NMS threshold into it (in order, up to ``max_batch``)."""
        kept: deque[_Pending] = deque()
        while self._queue:
            pending = self._queue.popleft()
            if pending.abandoned:
                continue
            if pending.iou == batch[0].iou and len(batch) < self.max_batch:
                batch.append(pending)
            else:
                kept.append(pending)
        self._queue.extendleft(reversed(kept))

    def _call_model(self, batch: list[_Pending]) -> None:
        start = time.perf_counter()
        try:
            predictor = self.model.predictor
            configure_postprocess(predictor.model, nms_threshold=batch[0].iou)
            results = predictor.predict_decoded([Decoded(p.image, "upload") for p in batch])
        except Exception as exc:  # noqa: BLE001 - every waiting request gets the model's error
            log.exception("model %s failed on a batch of %d", self.model.name, len(batch))
            for pending in batch:
                pending.resolve(error=exc)
            return
        seconds = time.perf_counter() - start
        if self.on_batch is not None:
            self.on_batch(self.model.name, len(batch), seconds)
        for pending, detections in zip(batch, results):
            pending.resolve(Batched(detections, start - pending.enqueued, len(batch)))
