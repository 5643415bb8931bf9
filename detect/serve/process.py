"""``detect serve`` in a process of its own on a free loopback port: for tests against a real server,
load tests and screenshots.

    with ServiceProcess(Path("models"), Path("/tmp/serve"), "--max-batch", "8") as server:
        httpx.post(server.url + "v1/detect", content=image_bytes)
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from detect.serve.models import MODEL_SUFFIXES


class ServiceProcess:
    """``python -m detect serve --port 0 ...`` in its own process; ``url`` once it printed that it is ready.

    ``flags`` are more ``detect serve`` flags; ``default_model`` defaults to the folder's only model;
    ``env`` adds environment variables (``DETECT_SERVE_API_KEY``...); the project's settings file is
    replaced by an empty one so only the flags and ``env`` count.

    Raises:
        RuntimeError: the server exited or printed no address within ``timeout`` seconds (its log is in the message).
    """

    def __init__(self, model_dir: Path, data_dir: Path, *flags: str, default_model: str | None = None,
                 threads: int = 1, env: dict[str, str] | None = None, timeout: float = 120.0) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        settings = data_dir / "service.yaml"
        settings.write_text("{}\n")
        if default_model is None:
            [only] = [p.stem for p in Path(model_dir).iterdir() if p.suffix.lower() in MODEL_SUFFIXES]
            default_model = only
        command = [sys.executable, "-m", "detect", "serve", "--port", "0", "--model-dir", str(model_dir),
                   "--default-model", default_model, "--data-dir", str(data_dir), "--threads", str(threads), *flags]
        environ = {**os.environ, "PYTHONUNBUFFERED": "1", "DETECT_SERVE_CONFIG": str(settings), **(env or {})}
        self.log = data_dir / "server.log"
        self._log = open(self.log, "w")
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._log, text=True, env=environ)
        self.url = self._ready(timeout)

    def _ready(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if found := re.search(r"ready at (http://\S+/)", line):
                return found.group(1)
            if time.monotonic() > deadline:
                break
        self.stop()
        raise RuntimeError(f"detect serve did not start:\n{self.log.read_text()[-3000:]}")

    def rss_mib(self) -> float:
        """The server's resident memory, MiB (Linux)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send ``sig`` and wait for the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._log.close()
        return code

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
