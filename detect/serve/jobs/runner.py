"""The worker pool that runs the jobs of a :class:`~detect.serve.jobs.store.JobStore`.

    >>> runner = JobRunner(store, settings, models)   # settings: data_dir, data_root, device, job_workers
    >>> runner.recover()                              # jobs a killed server left running: queued again or failed
    >>> runner.start()                                # settings.job_workers threads
    >>> job = runner.submit(new_job_id(), "track", "digits-frcnn-r18", {"conf": 0.3}, upload, total=250)
    >>> runner.cancel(job.id)                         # the running job stops within a frame
    >>> runner.stop()                                 # on shutdown: running jobs checkpoint and go back to the queue

Each worker claims the oldest queued job in the database (a guarded update: two workers, in
one process or several, never take the same job), runs it (:mod:`~detect.serve.jobs.video_job`,
:mod:`~detect.serve.jobs.evaluate_job`) with its files in ``data_dir/jobs/<id>/`` and ends it
``succeeded`` (with its result), ``failed`` (with the reason) or ``cancelled``. The uploaded
video is deleted once its job has ended.

What happens when a server stops:

* **Gracefully** (:meth:`JobRunner.stop`, SIGTERM): each running video job saves its checkpoint
  at its next frame and goes back to ``queued``; the next server resumes it from that frame. An
  evaluation still running after ``stop_seconds`` is queued again as it is (it reruns from the
  start). A graceful stop does not count as an attempt.
* **Killed** (crash, ``kill -9``): its jobs are left ``running``. :meth:`JobRunner.recover`, run
  by :meth:`JobRunner.start`, queues each again to resume from its ``checkpoint_frame`` (video
  jobs; evaluations rerun from the start), or marks it ``failed`` with "interrupted by a server
  restart at frame N; ..." when it cannot be: its input video is gone, or it was started
  :data:`MAX_ATTEMPTS` times already (a job that kills its server is not retried forever).
  Run it at start, before :meth:`JobRunner.start`. It assumes one server process per database:
  the jobs ``running`` when it starts are its predecessor's.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from detect.serve.jobs.evaluate_job import run_evaluate_job
from detect.serve.jobs.progress import CANCELLED, SHUTDOWN, JobProgress, JobStopped
from detect.serve.jobs.store import Job, JobStore, utc_now
from detect.serve.jobs.video_job import run_video_job

log = logging.getLogger("detect.serve.jobs")

#: runs a job may start (crashes included) before recovery gives up on it
MAX_ATTEMPTS = 3


def new_job_id() -> str:
    """A fresh job id: 32 hex digits (UUID4)."""
    return uuid.uuid4().hex


def _reason(error: BaseException) -> str:
    return str(error) or type(error).__name__


class JobRunner:
    """Runs the jobs of ``store`` on ``settings.job_workers`` threads (see the module docstring).

    Args:
        store: the jobs database.
        settings: the service's settings (``data_dir``, ``data_root``, ``device``, ``job_workers``).
        models: the served models (``get(name)`` -> a model with ``path`` and ``class_names``).
        checkpoint_seconds: how often a running job's progress is saved (0: every frame).
        poll_seconds: how often an idle worker looks for queued jobs (others' submissions).
        stop_seconds: how long :meth:`stop` waits for the running jobs.
    """

    def __init__(self, store: JobStore, settings: Any, models: Any, *, checkpoint_seconds: float = 1.0,
                 poll_seconds: float = 0.5, stop_seconds: float = 5.0) -> None:
        self.store, self.settings, self.models = store, settings, models
        self.checkpoint_seconds, self.poll_seconds, self.stop_seconds = checkpoint_seconds, poll_seconds, stop_seconds
        self.data_dir = Path(settings.data_dir)
        self._running: dict[str, tuple[Job, JobProgress]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def upload_dir(self) -> Path:
        """Where uploaded videos wait for their jobs."""
        return self.data_dir / "uploads"

    def job_dir(self, job_id: str) -> Path:
        """The folder of a job's files."""
        return self.data_dir / "jobs" / job_id

    def start(self) -> None:
        """Start the workers (call :meth:`recover` first: it is for jobs of a previous server)."""
        for i in range(self.settings.job_workers):
            thread = threading.Thread(target=self._work, name=f"job-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def recover(self) -> list[Job]:
        """Queue again (or fail) every job left ``running``; returns them as they are now."""
        return [self._recover(job) for job in self.store.interrupted()]

    def _recover(self, job: Job) -> Job:
        why = None
        if job.attempts >= MAX_ATTEMPTS:
            why = f"it was started {job.attempts} times and never finished, so it is not retried"
        elif job.kind != "evaluate" and not (job.input_path and Path(job.input_path).is_file()):
            why = "its input video is gone, so it cannot be resumed"
        if why is None:
            self.store.transition(job.id, ("running",), "queued", rate=None)
            log.info("job %s queued again to resume at frame %d", job.id, job.checkpoint_frame)
        else:
            self.store.transition(job.id, ("running",), "failed", finished_at=utc_now(), rate=None,
                                  error=f"interrupted by a server restart at frame {job.checkpoint_frame}; {why}")
            self._discard_input(job)
            log.warning("job %s failed on recovery: %s", job.id, why)
        return self.store.get(job.id)

    def submit(self, job_id: str, kind: str, model: str, params: dict[str, Any], input_path: Path | None = None,
               total: int | None = None) -> Job:
        """Queue a job (files in :meth:`job_dir`) and wake a worker."""
        job = self.store.create(job_id, kind, model, params, self.job_dir(job_id).resolve(),
                                None if input_path is None else Path(input_path).resolve(), total)
        self._wake.set()
        return job

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued or running job (a running one stops at its next frame, its files kept);
        returns the job as it is now (None: no such job). A finished job is left as it is."""
        job = self.store.get(job_id)
        if job is None or not self.store.transition(job_id, ("queued", "running"), "cancelled",
                                                    finished_at=utc_now(), rate=None):
            return job
        with self._lock:
            running = self._running.get(job_id)
        if running is not None:
            running[1].stop(CANCELLED)
        elif job.state == "queued":
            self._discard_input(job)
        return self.store.get(job_id)

    def stop(self, timeout: float | None = None) -> None:
        """Stop the workers: running jobs checkpoint and are queued again (see the module
        docstring); waits at most ``timeout`` seconds (default ``stop_seconds``). Idempotent."""
        self._stopping.set()
        self._wake.set()
        with self._lock:
            running = list(self._running.values())
        for _, progress in running:
            progress.stop(SHUTDOWN)
        deadline = time.monotonic() + (self.stop_seconds if timeout is None else timeout)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            left = list(self._running.values())
        for job, progress in left:  # not at a frame boundary in time (an evaluation): rerun later
            self._requeue(job, progress)
            log.warning("job %s still running at shutdown: queued again", job.id)

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                job = self.store.claim()
            except Exception:  # the database is down: keep polling, never lose the worker
                log.exception("cannot claim a job")
                job = None
            if job is None:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        progress = JobProgress(self.store, job, self.checkpoint_seconds)
        with self._lock:
            self._running[job.id] = (job, progress)
        if self._stopping.is_set():  # claimed while stop() was starting
            progress.stop(SHUTDOWN)
        log.info("job %s (%s) started at frame %d, attempt %d", job.id, job.kind, job.checkpoint_frame, job.attempts)
        try:
            result = self._execute(job, progress)
        except JobStopped as stop:
            if stop.reason == SHUTDOWN:
                self._requeue(job, progress)
            elif (now := self.store.get(job.id)) is not None and now.finished:  # not if stop() queued it again
                self._discard_input(job)
            log.info("job %s stopped at frame %d: %s", job.id, progress.next_frame, stop.reason)
        except Exception as error:  # any failure of the job is its own, never the worker's
            log.warning("job %s failed: %s", job.id, _reason(error),
                        exc_info=not isinstance(error, (OSError, ValueError)))
            self.store.transition(job.id, ("running",), "failed", error=_reason(error), finished_at=utc_now(),
                                  processed=progress.processed, checkpoint_frame=progress.next_frame, rate=None)
            self._discard_input(job)
        else:
            done = result["images"] if job.kind == "evaluate" else progress.processed
            self.store.transition(job.id, ("running",), "succeeded", result=result, finished_at=utc_now(),
                                  processed=done, total=done, checkpoint_frame=progress.next_frame)
            self._discard_input(job)
            log.info("job %s succeeded", job.id)
        finally:
            with self._lock:
                self._running.pop(job.id, None)

    def _execute(self, job: Job, progress: JobProgress) -> dict[str, Any]:
        model = self.models.get(job.model)
        device = self.settings.device
        if job.kind == "evaluate":
            return run_evaluate_job(job, Path(model.path), Path(self.settings.data_root), device)
        return run_video_job(job, Path(model.path), model.class_names, device, progress)

    def _requeue(self, job: Job, progress: JobProgress) -> None:
        """Back to ``queued`` at the saved frame; the attempt is given back."""
        self.store.transition(job.id, ("running",), "queued", processed=progress.processed,
                              checkpoint_frame=progress.next_frame, attempts=job.attempts - 1, rate=None)

    def _discard_input(self, job: Job) -> None:
        """Delete the job's uploaded video (only a file in :attr:`upload_dir`)."""
        if job.input_path and Path(job.input_path).parent == self.upload_dir.resolve():
            Path(job.input_path).unlink(missing_ok=True)
