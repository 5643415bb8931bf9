"""Load test of ``detect serve`` on loopback, against the same model's offline batched throughput.

One run: (1) the model's offline throughput — the same ``Predictor`` call the service's batcher
makes, on images decoded beforehand, in batches of the service's ``max_batch`` (no HTTP, no
decoding), measured before and after the load and averaged (the machine's speed drifts); (2) the
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
import platform
import re
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


def offline_rate(predictor, pixels: Sequence[np.ndarray], batch: int, seconds: float) -> float:
    """Images a second of ``predictor`` on batches of ``batch`` images decoded beforehand, for about
    ``seconds`` (what the service's batcher thread runs, without HTTP or decoding)."""
    from detect.inference.predictor import Decoded

    def run(start: int) -> None:
        predictor.predict_decoded([Decoded(pixels[(start + i) % len(pixels)], "offline") for i in range(batch)])

    run(0)  # warm-up
    done, begin = 0, time.perf_counter()
    while time.perf_counter() - begin < seconds:
        run(done)
        done += batch
    return done / (time.perf_counter() - begin)


def offline_predictor(model: Path, threads: int):
    """The model as the service runs it (lowest score threshold, most detections)."""
    import torch

    from detect.inference.predictor import Predictor
    from detect.serve.models import MAX_DETECTIONS, SCORE_FLOOR

    torch.set_num_threads(threads)
    return Predictor(model, conf=SCORE_FLOOR, max_det=MAX_DETECTIONS)


def start_service(model: Path, settings: dict[str, object], data_dir: Path, threads: int):
    """``detect serve`` on ``model`` alone (a folder holding a link to it), on a free loopback port."""
    from detect.serve.process import ServiceProcess

    folder = data_dir / "models"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / model.name).symlink_to(model.resolve())
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in settings.items()]
    return ServiceProcess(folder, data_dir / "data", *flags, "--log-level", "warning", threads=threads, timeout=300)


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
    """Model calls by batch size range (``"5-6"``, ``"8"``), from two cumulative snapshots."""
    rows, low, previous = [], 1, 0.0
    for le in sorted(after, key=float):
        cumulative = after[le] - before.get(le, 0.0)
        calls = int(round(cumulative - previous))
        high = "more" if le == "+Inf" else f"{float(le):g}"
        if calls:
            rows.append((high if high == str(low) else f"{low}-{high}", calls))
        low = low if le == "+Inf" else int(float(le)) + 1
        previous = cumulative
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
        f"{r['max_batch']}, before/after) | ratio | p50 ms | p90 ms | p99 ms | other answers | RSS after warm-up → end MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {r['clients']} | {r['seconds']:.0f} | {r['statuses'].get('200', 0)} | {r['service_per_s']:.2f} | "
        f"{r['offline_per_s']:.2f} ({r['offline_before_after'][0]:.2f}/{r['offline_before_after'][1]:.2f}) | "
        f"{r['ratio']:.2f}x | {p[0]:.0f} | {p[1]:.0f} | {p[2]:.0f} | {errors} | "
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
    p.add_argument("--offline-seconds", type=float, default=40.0, help="offline measurement, half before and half after")
    p.add_argument("--out", type=Path, default=ROOT / "runs/loadtest")
    args = p.parse_args(argv)

    from detect.data.image_io import read_rgb

    images = test_images(args.images, args.count)
    bodies = [path.read_bytes() for path in images]
    pixels = [read_rgb(path) for path in images]
    predictor = offline_predictor(args.model, args.threads)
    offline = [offline_rate(predictor, pixels, args.max_batch, args.offline_seconds / 2)]
    log(f"offline before the load: {offline[0]:.2f} images/s (batches of {args.max_batch})")
    with tempfile.TemporaryDirectory(prefix="loadtest-") as tmp:
        server = start_service(args.model, {"max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms,
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
    offline.append(offline_rate(predictor, pixels, args.max_batch, args.offline_seconds / 2))
    log(f"offline after the load: {offline[1]:.2f} images/s")
    service = run["statuses"].get("200", 0) / run["seconds"]
    result = {"date": time.strftime("%Y-%m-%d"), "machine": machine(args.threads), "model": str(args.model),
              "clients": args.clients, "seconds": run["seconds"], "max_batch": args.max_batch,
              "statuses": run["statuses"], "latencies_ms": [1000 * s for s in run["latencies"]],
              "service_per_s": service, "offline_per_s": sum(offline) / 2, "offline_before_after": offline,
              "ratio": service / (sum(offline) / 2),
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
