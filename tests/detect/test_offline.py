"""No network: importing and using ultralytics through ``detect`` opens no connection."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter so the import really happens here; every socket connect and
# DNS look-up is recorded (and refused) before anything else is imported.
PROBE = textwrap.dedent(
    """
    import socket, sys
    attempts = []
    def refuse(*args, **kwargs):
        attempts.append(args[1:2] or args[:1])
        raise OSError("network disabled by test")
    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.getaddrinfo = refuse
    socket.create_connection = refuse

    import detect  # configures ultralytics for offline use
    from detect.offline import disable_ultralytics_sync
    import torch
    from ultralytics import YOLO
    disable_ultralytics_sync()
    model = YOLO("yolov8n.yaml")
    with torch.no_grad():
        model.model.eval()(torch.zeros(1, 3, 64, 64))
    from ultralytics.utils import SETTINGS
    print("sync", SETTINGS["sync"])
    print("attempts", attempts)
    sys.exit(1 if attempts else 0)
    """
)


def test_ultralytics_import_and_model_build_open_no_connection(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOLO_")}
    env["DETECT_HOME"] = str(tmp_path)  # a fresh config dir: fonts must be seeded, not fetched
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "attempts []" in result.stdout and "sync False" in result.stdout
    assert (tmp_path / "ultralytics" / "Arial.ttf").stat().st_size > 100_000
