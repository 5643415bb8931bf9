"""Bounded prefetch: iterate over anything in a background thread, a few items ahead of the consumer.

:func:`background` is the one prefetch thread of ``detect.inference``: the :class:`VideoReader
<detect.inference.video.VideoReader>` decodes frames with it, and the Predictor decodes images
ahead of the model with it. Memory stays flat however long the input: the thread waits once
``maxsize`` items are ready and not yet taken.

Contract:

- items come out in the order the iterable yields them;
- an exception raised by the iterable is re-raised by the consumer's ``next()`` at its place in the
  sequence (after every item produced before it), with its original traceback;
- :meth:`Prefetcher.close` (or leaving the ``with`` block, or the prefetcher being garbage
  collected) stops the thread: it stops asking the iterable for items and closes it (a
  generator's ``finally`` blocks run in the thread that ran the generator), even when the consumer
  stops early and the thread is waiting for room in the queue.

The thread is a daemon: an iterable that blocks forever in its own ``next()`` (a stalled network
stream) cannot keep the interpreter alive, and ``close(timeout)`` returns after ``timeout`` seconds.
The thread holds no reference to the :class:`Prefetcher`, so dropping the prefetcher without
closing it stops the thread too (``weakref.finalize``).
"""

from __future__ import annotations

import queue
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

__all__ = ["Prefetcher", "background"]

T = TypeVar("T")

_END = object()  # the iterable is exhausted


class _Raised:
    """An exception raised by the iterable, carried through the queue to the consumer."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _produce(iterable: Iterable[T], items: queue.Queue, stop: threading.Event) -> None:
    """Thread body: put the iterable's items, then ``_END`` or the exception, until ``stop`` is set."""

    def put(item: object) -> bool:
        """Put ``item``, waiting for room; False once ``stop`` is set (the item is dropped)."""
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    iterator = None
    try:
        iterator = iter(iterable)
        while not stop.is_set():
            try:
                item = next(iterator)
            except StopIteration:
                put(_END)
                return
            if not put(item):
                return
    except BaseException as error:  # noqa: BLE001 - every exception goes to the consumer
        put(_Raised(error))
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            try:
                close()  # a generator's finally blocks run here, in the thread that ran it
            except Exception:  # noqa: BLE001 - nobody is left to report it to
                pass


def _stop(stop: threading.Event, items: queue.Queue) -> None:
    """Tell the thread to stop and free the queue so that a waiting ``put`` returns."""
    stop.set()
    try:
        while True:
            items.get_nowait()
    except queue.Empty:
        pass


class Prefetcher(Iterator[T], Generic[T]):
    """An iterator over ``iterable`` filled by a background thread; see :func:`background`."""

    def __init__(self, iterable: Iterable[T], maxsize: int = 8, *, name: str = "prefetch") -> None:
        if not isinstance(maxsize, int) or isinstance(maxsize, bool) or maxsize < 1:
            raise ValueError(f"prefetch queue size: expected a positive integer, got {maxsize!r}")
        self._items: queue.Queue = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._done = False
        self.thread = threading.Thread(target=_produce, args=(iterable, self._items, self._stop),
                                       name=name, daemon=True)
        self._finalizer = weakref.finalize(self, _stop, self._stop, self._items)
        self.thread.start()

    def __iter__(self) -> Prefetcher[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        item = self._items.get()
        if item is _END:
            self._finish()
            raise StopIteration
        if isinstance(item, _Raised):
            self._finish()
            raise item.error
        return item

    def _finish(self) -> None:
        self._done = True
        self._finalizer()
        self.thread.join()  # the thread ends right after putting its last entry

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop the thread, close the iterable and wait up to ``timeout`` seconds for the thread to end.

        Items not yet taken are dropped; ``next()`` then raises ``StopIteration``. Idempotent. The
        thread ends as soon as the iterable's current ``next()`` returns (a video frame being
        decoded: milliseconds); ``timeout`` bounds the wait for one that hangs.
        """
        self._done = True
        self._finalizer()
        if self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def background(iterable: Iterable[T], maxsize: int = 8, *, name: str = "prefetch") -> Prefetcher[T]:
    """Iterate over ``iterable`` in a daemon thread, at most ``maxsize`` items ahead of the consumer.

    Use it as an iterator, preferably in a ``with`` block (or call :meth:`Prefetcher.close`) so
    the thread stops when the consumer stops early::

        with background(decode(p) for p in paths) as images:
            for image in images:
                ...

    Args:
        iterable: any iterable; it is iterated only in the thread (``iter()`` included).
        maxsize: how many items may wait in the queue (at least 1).
        name: the thread's name (shown by debuggers and ``threading.enumerate()``).

    Raises:
        ValueError: ``maxsize`` is not a positive integer.
    """
    return Prefetcher(iterable, maxsize, name=name)
