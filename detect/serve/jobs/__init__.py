"""Persistent jobs of the service: long work submitted over HTTP, run by workers, surviving restarts.

store (SQLite / PostgreSQL records) → progress (checkpoints, stop signal) → video_job, evaluate_job
(render: the annotated video; datasets: paths under the data root) → runner (the worker pool,
recovery, graceful stop) → upload, schemas → routes (``/v1/jobs``).
"""
