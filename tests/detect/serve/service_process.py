"""``detect serve`` as a real process for the end-to-end tests (the web page's, the jobs' crash tests).

    with ServiceProcess(model_dir, tmp_path / "service") as server:      # returns once it is ready
        httpx.get(server.url + "v1/models")
    server.stop(signal.SIGKILL)                                         # -> the exit code (-9)

The process is ``python -m detect serve --port 0`` run from the repository root; the address comes
from the line it prints once its models are loaded (``detect serve: ready at http://127.0.0.1:PORT/``).
No ``DETECT_SERVE_*`` variable of the test's environment reaches it (a CI database URL or key would
change what is tested); the API key is given by ``api_key``, the way a user gives it (environment).
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[3]
READY = re.compile(r"detect serve: ready at (http://\S+/)")


class ServiceProcess:
    """``detect serve`` serving ``model_dir`` with its files in ``data_dir``, on a free loopback port.

    Args:
        model_dir: the served models' folder.
        data_dir: the service's own folder (jobs database, uploads, results); made if missing.
        default_model: the model a request without ``?model=`` gets (default: the folder's only ``.pt``).
        api_key: when given, the key every ``/v1`` route needs.
        threads: torch CPU threads of the service.
        args: more ``detect serve`` flags.
        timeout: seconds to wait for the ready line.

    Attributes:
        url: ``http://127.0.0.1:PORT/``.
        log: the file holding the process's stderr (its log).
        stdout: the lines it printed on stdout so far.

    Raises:
        RuntimeError: it exited or did not get ready in ``timeout`` s (the message ends with its log).
    """

    def __init__(self, model_dir: Path, data_dir: Path, *, default_model: str | None = None,
                 api_key: str | None = None, threads: int = 1, args: tuple[str, ...] = (),
                 timeout: float = 120) -> None:
        if default_model is None:
            [default_model] = [p.stem for p in Path(model_dir).glob("*.pt")]
        data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DETECT_SERVE_")} | {"PYTHONUNBUFFERED": "1"}
        if api_key:
            env["DETECT_SERVE_API_KEY"] = api_key
        command = [sys.executable, "-m", "detect", "serve", "--port", "0", "--model-dir", str(model_dir),
                   "--default-model", default_model, "--data-dir", str(data_dir), "--threads", str(threads), *args]
        self.log = data_dir / "service.log"
        with self.log.open("a") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log,
                                            text=True)
        self.stdout: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()  # drains the pipe for the process's whole life
        self.url = self._wait_ready(timeout)

    def _read(self) -> None:
        for line in self.process.stdout:
            self.stdout.append(line)
            self._lines.put(line)

    def _wait_ready(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            if match := READY.search(line):
                return match.group(1)
        code = self.stop(signal.SIGKILL)
        raise RuntimeError(f"detect serve did not get ready in {timeout:.0f} s (exit code {code}); "
                           f"its log ({self.log}):\n{self.log.read_text()[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send ``sig`` (unless it has exited), wait for the exit (SIGKILL after ``timeout`` s); the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
