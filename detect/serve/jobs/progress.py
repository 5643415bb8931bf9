"""A running job's link to its record: progress persisted as it goes, and the signal to stop.

The worker running a job calls :meth:`JobProgress.frame_done` after each frame is written. Every
``every`` seconds the frame count, the frame a resumed run would start at and the rate are saved
(a guarded update: only while the record is still ``running``). A stop asked by
:meth:`JobProgress.stop` (cancel, shutdown) is seen at the next frame: the progress is saved
then and :class:`JobStopped` raised, which ends the predict loop through its ``finally`` blocks
(files closed, every finished line kept).
"""

from __future__ import annotations

import threading
import time

from detect.serve.jobs.store import Job, JobStore

#: why a job stops before its end
CANCELLED, SHUTDOWN, LOST = "cancelled", "shutdown", "lost"


class JobStopped(Exception):
    """Raised in a running job asked to stop. ``reason``: :data:`CANCELLED` (DELETE),
    :data:`SHUTDOWN` (the server stops; the job is queued again) or :data:`LOST` (its record
    left ``running`` meanwhile, e.g. cancelled by another server process)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"job stopped: {reason}")
        self.reason = reason


class JobProgress:
    """Progress of ``job`` in this run: ``processed`` frames (all runs), ``next_frame`` (the
    checkpoint: every frame before it is written), saved to ``store`` at most every ``every``
    seconds (0: every frame)."""

    def __init__(self, store: JobStore, job: Job, every: float = 1.0) -> None:
        self.store, self.job_id, self.every = store, job.id, every
        self.processed, self.next_frame = job.processed, job.checkpoint_frame
        self._first_processed, self._started = job.processed, time.monotonic()
        self._saved_at = self._started
        self._reason: str | None = None
        self._lock = threading.Lock()

    @property
    def rate(self) -> float | None:
        """Frames a second in this run, None before the first frame."""
        seconds, done = time.monotonic() - self._started, self.processed - self._first_processed
        return done / seconds if done > 0 and seconds > 0 else None

    def stop(self, reason: str) -> None:
        """Ask the job to stop at its next frame (the first reason given wins)."""
        with self._lock:
            self._reason = self._reason or reason

    def check(self) -> None:
        """Raise :class:`JobStopped` if a stop was asked."""
        if self._reason is not None:
            raise JobStopped(self._reason)

    def frame_done(self, processed: int, next_frame: int) -> None:
        """Record that ``processed`` frames are written and the run goes on at ``next_frame``;
        save when due; raise :class:`JobStopped` when asked to stop (after saving)."""
        self.processed, self.next_frame = processed, next_frame
        if self._reason is not None:
            self.save()
            raise JobStopped(self._reason)
        if time.monotonic() - self._saved_at >= self.every and not self.save():
            raise JobStopped(LOST)

    def save(self) -> bool:
        """Write the progress to the record while it is ``running``; whether it still was."""
        self._saved_at = time.monotonic()
        return self.store.update(self.job_id, when=("running",), processed=self.processed,
                                 checkpoint_frame=self.next_frame, rate=self.rate)
