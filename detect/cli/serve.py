"""``detect serve``: the detection service over HTTP (API, jobs, web page).

Examples::

    detect serve                                   # configs/service.yaml: http://127.0.0.1:8000/
    detect serve --port 9000 --model-dir models --default-model digits-frcnn-r18
    DETECT_SERVE_API_KEY=secret-key detect serve --host 0.0.0.0
    detect serve --database-url postgresql+psycopg://detect:secret@localhost/detect

"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

#: flags that set a service setting of the same name (the settings' own help is shown)
SETTING_FLAGS = ("host", "port", "model_dir", "default_model", "data_dir", "data_root", "database_url", "device",
                 "threads", "max_batch", "max_wait_ms", "queue_size", "max_upload_mb", "max_video_mb", "max_pixels",
                 "job_workers", "log_level")


def cmd_serve(args: argparse.Namespace) -> int:
    # OpenMP threads that sleep when idle instead of spinning leave the CPU to the event loop and the
    # decoding threads between the model's parallel regions (docs/benchmarks/service.md). Read when
    # torch loads, so set before the import below.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from detect.serve.server import serve
    from detect.serve.settings import load_settings

    settings = load_settings(args.config, flags={key: getattr(args, key) for key in SETTING_FLAGS})
    try:
        serve(settings)
    except OSError as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    from detect.serve.settings import ServiceSettings

    p = sub.add_parser(
        "serve",
        help="serve detectors over HTTP: POST /v1/detect, video and evaluation jobs, a web page at /",
        description="Serve every model of a folder over HTTP (FastAPI + uvicorn): POST /v1/detect with dynamic "
                    "batching, /v1/jobs for videos (detect, track) and evaluations (SQLite or PostgreSQL, resumed "
                    "after a crash), /v1/models, /healthz, /readyz, /metrics (Prometheus), the API at /docs and a "
                    "web page at /. Settings: configs/service.yaml < DETECT_SERVE_* environment variables < flags; "
                    "the API key only by file or environment (DETECT_SERVE_API_KEY), never on the command line.",
    )
    p.add_argument("--config", type=Path, metavar="YAML",
                   help="settings file (default: $DETECT_SERVE_CONFIG or configs/service.yaml)")
    fields = ServiceSettings.model_fields
    for key in SETTING_FLAGS:
        f = fields[key]
        kind = {int: int, float: float}.get(f.annotation if f.annotation in (int, float) else None, str)
        if key == "threads":
            kind = int
        p.add_argument(f"--{key.replace('_', '-')}", type=kind, metavar=key.split("_")[-1].upper(),
                       help=f"{f.description or key} (default: from the settings file, else {f.default})")
    p.set_defaults(func=cmd_serve)
