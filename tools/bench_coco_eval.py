"""Benchmark: COCO box mAP through ``COCOEvaluator`` with pycocotools vs faster-coco-eval.

A COCO-sized random problem (default 5,000 images x 100 detections, 80 classes, ~7 objects an
image like COCO val2017): detections are noisy copies of the ground truth (some with the wrong
class) topped up with random boxes. Both backends see the same inputs; each evaluation
(``COCOEvaluator.compute()``: building the COCO objects, evaluate, accumulate, summarize) is timed
``--runs`` times, backends alternating. Prints a Markdown table (median seconds, speed-up over
pycocotools) and checks that the 12 COCO numbers are identical.

    .venv/bin/python tools/bench_coco_eval.py [--images 5000] [--dets 100] [--classes 80] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import detect  # noqa: E402,F401  (offline settings before anything imports ultralytics)
from detect.evaluation.coco import BACKENDS, COCOEvaluator  # noqa: E402


def _xyxy(xy: np.ndarray, wh: np.ndarray, size: float) -> np.ndarray:
    x1y1 = np.clip(xy, 0, size - 2)
    return np.concatenate([x1y1, np.minimum(x1y1 + np.maximum(wh, 1.0), size)], axis=1)


def make_problem(num_images: int, dets: int, classes: int, seed: int = 0, size: float = 640.0):
    """``(targets, outputs)``: xyxy pixels on ``size`` x ``size`` images, 0-based labels."""
    rng = np.random.default_rng(seed)
    targets, outputs = [], []
    for i in range(num_images):
        n = int(rng.poisson(7))
        wh = np.exp(rng.uniform(np.log(8), np.log(300), (n, 2)))
        gt = _xyxy(rng.uniform(0, size, (n, 2)), wh, size)
        labels = rng.integers(0, classes, n)
        copies = min(n, dets)
        noisy = gt[:copies] + rng.normal(0, 0.08, (copies, 4)) * np.tile(gt[:copies, 2:] - gt[:copies, :2], 2)
        noisy = _xyxy(np.minimum(noisy[:, :2], noisy[:, 2:]), np.abs(noisy[:, 2:] - noisy[:, :2]), size)
        copy_labels = np.where(rng.uniform(size=copies) < 0.15, rng.integers(0, classes, copies), labels[:copies])
        extra = dets - copies
        boxes = np.vstack([noisy, _xyxy(rng.uniform(0, size, (extra, 2)), rng.uniform(4, 200, (extra, 2)), size)])
        det_labels = np.concatenate([copy_labels, rng.integers(0, classes, extra)])
        scores = np.concatenate([rng.uniform(0.3, 1.0, copies), rng.uniform(0.0, 0.7, extra)])
        targets.append({"image_id": i + 1, "boxes": torch.from_numpy(gt), "labels": torch.from_numpy(labels),
                        "orig_size": (int(size), int(size))})
        outputs.append({"boxes": torch.from_numpy(boxes), "scores": torch.from_numpy(scores),
                        "labels": torch.from_numpy(det_labels)})
    return targets, outputs


def time_backend(backend: str, names: list[str], targets: list, outputs: list) -> tuple[float, dict[str, float]]:
    evaluator = COCOEvaluator(names, backend=backend)
    evaluator.process(targets, outputs)
    start = time.perf_counter()
    result = evaluator.compute()
    return time.perf_counter() - start, result.stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--dets", type=int, default=100, help="detections per image")
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    names = [f"class{k}" for k in range(args.classes)]
    targets, outputs = make_problem(args.images, args.dets, args.classes)
    num_gt = sum(len(t["labels"]) for t in targets)
    print(f"{args.images} images, {num_gt} ground-truth boxes, {args.images * args.dets} detections, "
          f"{args.classes} classes; {args.runs} runs each", flush=True)
    times: dict[str, list[float]] = {b: [] for b in BACKENDS}
    stats: dict[str, dict[str, float]] = {}
    for run in range(args.runs):
        for backend in BACKENDS if run % 2 == 0 else BACKENDS[::-1]:
            seconds, stats[backend] = time_backend(backend, names, targets, outputs)
            times[backend].append(seconds)
            print(f"  run {run + 1} {backend}: {seconds:.2f} s", flush=True)
    print(render(times, stats))
    return 0 if _identical(stats) else 1


def _identical(stats: dict[str, dict[str, float]]) -> bool:
    ref, other = (stats[b] for b in BACKENDS)
    return list(ref) == list(other) and all(ref[k] == other[k] for k in ref)


def render(times: dict[str, list[float]], stats: dict[str, dict[str, float]]) -> str:
    base = statistics.median(times[BACKENDS[0]])
    lines = [f"| backend | seconds (median of {len(times[BACKENDS[0]])}) | speed-up vs {BACKENDS[0]} |", "|---|---|---|"]
    for backend in BACKENDS:
        median = statistics.median(times[backend])
        lines.append(f"| {backend} | {median:.2f} | {base / median:.2f}x |")
    ref, other = (stats[b] for b in BACKENDS)
    diff = max(abs(ref[k] - other[k]) for k in ref)
    verdict = "identical" if _identical(stats) else f"DIFFERENT (max |difference| {diff:.3g})"
    lines += ["", f"12 COCO numbers: {verdict}", "", "| metric | " + " | ".join(BACKENDS) + " |", "|---|---|---|"]
    lines += [f"| {k} | {ref[k]:.6f} | {other[k]:.6f} |" for k in ref]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
