"""Load test of ``detect serve`` on loopback, against the same model's offline batched throughput.

One run: (1) the model's offline throughput — its forward alone on images decoded beforehand, in
batches of the service's ``max_batch`` (no HTTP, no decode: the stricter reference); (2) the
service started as its own process (``detect serve --port 0``) on the same model, warmed up, then N
concurrent clients posting the test images (``POST /v1/detect``, raw bodies) for T seconds.
Printed (and written to ``OUT/loadtest.md`` / ``.json``): throughput, latency p50/p90/p99, answers
by status (503s with ``Retry-After`` are the service's deliberate back-pressure), the batch-size
histogram (from ``/metrics``), the server's RSS after warm-up and at the end, and the ratio of the
service's throughput to the offline one.

    python tools/loadtest.py --model models/digits-frcnn-r18.pt --clients 32 --seconds 60
    python tools/loadtest.py --model models/digits-frcnn-r18.pt --clients 64 --seconds 600 --warmup 60   # soak

Only loopback addresses are used; nothing else is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing


def log(message: str) -> None:
    print(f"[loadtest] {message}", file=sys.stderr, flush=True)


def test_images(folder: Path, count: int) -> list[Path]:
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:count]
    if not images:
        raise SystemExit(f"{folder}: no PNG or JPEG images")
    return images


def offline_rate(model: Path, images: Sequence[Path], batch: int, threads: int, seconds: float) -> float:
    """Images a second of the model's forward alone (batches of ``batch``, decoded beforehand), for about ``seconds``."""
    import torch

    from detect.data.image_io import read_rgb
    from detect.inference.loop import timed_forward
    from detect.inference.predictor import Predictor, to_tensor
    from detect.serve.models import MAX_DETECTIONS, SCORE_FLOOR

    torch.set_num_threads(threads)
    predictor = Predictor(model, conf=SCORE_FLOOR, max_det=MAX_DETECTIONS)  # as the service runs it
    pixels = [read_rgb(p) for p in images]
    tensors = [to_tensor(image, predictor.device) for image in pixels]
    timed_forward(predictor.model, tensors[:batch], predictor.device)  # warm-up
    done, elapsed, start = 0, 0.0, 0
    while elapsed < seconds:
        chunk = [tensors[(start + i) % len(tensors)] for i in range(batch)]
        _, took = timed_forward(predictor.model, chunk, predictor.device)
        done, elapsed, start = done + batch, elapsed + took, start + batch
    return done / elapsed


class Server:
    """``detect serve`` in its own process on a free loopback port."""

    def __init__(self, model: Path, settings: dict[str, object], data_dir: Path, threads: int) -> None:
        command = [sys.executable, "-m", "detect", "serve", "--host", "127.0.0.1", "--port", "0",
                   "--model-dir", str(data_dir / "models"), "--default-model", model.stem,
                   "--data-dir", str(data_dir / "data"), "--threads", str(threads), "--log-level", "warning"]
        for key, value in settings.items():
            command += [f"--{key.replace('_', '-')}", str(value)]
        (data_dir / "models").mkdir(parents=True, exist_ok=True)
        link = data_dir / "models" / model.name
        if not link.exists():
            link.symlink_to(model.resolve())
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "DETECT_SERVE_CONFIG": str(data_dir / "none.yaml")}
        (data_dir / "none.yaml").write_text("{}\n")
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env=env, cwd=ROOT)
        self.url = self._wait_ready()

    def _wait_ready(self, timeout: float = 300.0) -> str:
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if found := re.search(r"ready at (http://\S+/)", line):
                return found.group(1)
            if time.monotonic() > deadline:
                break
        self.stop()
        raise SystemExit("the service did not start (see its output above)")

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def load(url: str, bodies: Sequence[bytes], clients: int, seconds: float) -> dict:
    """``clients`` loops posting ``bodies`` round-robin for ``seconds``: latencies of the 200s, statuses."""
    import httpx

    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(index: int, http: httpx.AsyncClient) -> None:
        i = index
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                answer = await http.post("v1/detect", content=bodies[i % len(bodies)],
                                         headers={"Content-Type": "application/octet-stream"})
                statuses[str(answer.status_code)] += 1
                if answer.status_code == 200:
                    latencies.append(time.perf_counter() - start)
                elif answer.status_code == 503:
                    await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
            i += clients

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(clients)))
        elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "statuses": dict(statuses), "latencies": latencies}


def batch_histogram(metrics: str) -> dict[str, float]:
    """Cumulative ``detect_batch_size`` bucket counts (``le`` → count) summed over models."""
    counts: Counter[str] = Counter()
    for le, value in re.findall(r'detect_batch_size_bucket\{le="([^"]+)",model="[^"]*"\} (\S+)', metrics):
        counts[le] += float(value)
    return dict(counts)


def histogram_rows(before: dict[str, float], after: dict[str, float]) -> list[tuple[str, int]]:
    """Model calls by batch size range, from two cumulative snapshots."""
    rows, previous_le, previous = [], "0", 0.0
    for le in sorted(after, key=lambda k: float(k)):
        cumulative = after[le] - before.get(le, 0.0)
        calls = int(round(cumulative - previous))
        if calls:
            label = le if float(le) - float(previous_le) <= 1 else f"{int(float(previous_le)) + 1}-{le}"
            rows.append((label.replace("+Inf", "more"), calls))
        previous_le, previous = le, cumulative
    return rows


def fetch(url: str) -> str:
    import httpx

    return httpx.get(url + "metrics", timeout=30).text


def markdown(r: dict, command: str) -> str:
    p = np.percentile(r["latencies_ms"], [50, 90, 99]) if r["latencies_ms"] else [float("nan")] * 3
    errors = ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items()) if k != "200") or "none"
    batches = ", ".join(f"{size}: {calls}" for size, calls in r["batch_histogram"]) or "none"
    return "\n".join([
        f"`{command}`", "", f"{r['date']} | {r['machine']}", "",
        "| clients | seconds | answered 200 | images/s (service) | images/s (offline, batch "
        f"{r['max_batch']}) | ratio | p50 ms | p90 ms | p99 ms | other answers | RSS after warm-up → end MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {r['clients']} | {r['seconds']:.0f} | {r['statuses'].get('200', 0)} | {r['service_per_s']:.2f} | "
        f"{r['offline_per_s']:.2f} | {r['ratio']:.2f}x | {p[0]:.0f} | {p[1]:.0f} | {p[2]:.0f} | {errors} | "
        f"{r['rss_start_mib']:.0f} → {r['rss_end_mib']:.0f} ({100 * r['rss_growth']:+.1f}%) |",
        "", f"Model calls by batch size: {batches}.", ""])


def machine(threads: int) -> str:
    import torch

    return f"{platform.machine()} CPU, {threads} torch thread(s) | torch {torch.__version__} | python {platform.python_version()}"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=ROOT / "models/digits-frcnn-r18.pt", help="the served model file")
    p.add_argument("--images", type=Path, default=ROOT / "data/digit-scenes/coco/images/test")
    p.add_argument("--count", type=int, default=64, help="distinct images posted (default 64)")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=float, default=60.0, help="measured load (default 60)")
    p.add_argument("--warmup", type=float, default=15.0, help="load before measuring, untimed (default 15)")
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--max-wait-ms", type=float, default=10.0)
    p.add_argument("--queue-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2, help="torch threads of the service and the offline run")
    p.add_argument("--offline-seconds", type=float, default=30.0)
    p.add_argument("--out", type=Path, default=ROOT / "runs/loadtest")
    args = p.parse_args(argv)

    images = test_images(args.images, args.count)
    bodies = [path.read_bytes() for path in images]
    log(f"offline: {args.model.name}, batches of {args.max_batch}, {args.offline_seconds:.0f} s")
    offline = offline_rate(args.model, images, args.max_batch, args.threads, args.offline_seconds)
    log(f"offline: {offline:.2f} images/s")
    with tempfile.TemporaryDirectory(prefix="loadtest-") as tmp:
        server = Server(args.model, {"max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms,
                                     "queue_size": args.queue_size}, Path(tmp), args.threads)
        try:
            log(f"service at {server.url}; warm-up {args.warmup:.0f} s with {args.clients} clients")
            asyncio.run(load(server.url, bodies, args.clients, args.warmup))
            rss_start, before = server.rss_mib(), batch_histogram(fetch(server.url))
            log(f"load: {args.clients} clients for {args.seconds:.0f} s")
            run = asyncio.run(load(server.url, bodies, args.clients, args.seconds))
            rss_end, after = server.rss_mib(), batch_histogram(fetch(server.url))
        finally:
            server.stop()
    service = run["statuses"].get("200", 0) / run["seconds"]
    result = {"date": time.strftime("%Y-%m-%d"), "machine": machine(args.threads), "model": str(args.model),
              "clients": args.clients, "seconds": run["seconds"], "max_batch": args.max_batch,
              "statuses": run["statuses"], "latencies_ms": [1000 * s for s in run["latencies"]],
              "service_per_s": service, "offline_per_s": offline, "ratio": service / offline,
              "rss_start_mib": rss_start, "rss_end_mib": rss_end, "rss_growth": rss_end / rss_start - 1,
              "batch_histogram": histogram_rows(before, after)}
    command = "python tools/loadtest.py " + " ".join(argv if argv is not None else sys.argv[1:])
    table = markdown(result, command)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "loadtest.md").write_text(table)
    (args.out / "loadtest.json").write_text(json.dumps({k: v for k, v in result.items() if k != "latencies_ms"}
                                                       | {"p50_p90_p99_ms": list(np.percentile(
                                                           result["latencies_ms"] or [0], [50, 90, 99]))}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
