"""``detect bench``: latency, throughput and (with a dataset) accuracy of detectors, side by side.

Two latencies per detector, each the median (and p90) over timed calls after warm-up:

* ``model``: the detector's forward on decoded float images (its own resize/letterbox, network
  and NMS included), i.e. what ``model(images)`` costs in a training/eval loop;
* ``e2e``: from the JPEG file to the detections: read, decode, to float, forward.

Peers (torchvision, ultralytics) are just other registry names, measured in the same run so
ratios between rows are meaningful on a shared, noisy machine.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from classify.base.checkpoint import load_checkpoint
from detect.data.formats import load_split
from detect.data.image_io import read_image
from detect.evaluation.timing import LatencyStats, summarize, time_call
from detect.inference.evaluate import evaluate_detector
from detect.models.loading import DetectorSpec
from detect.models.registry import detector_entry
from detect.structures import DatasetSplit


@dataclass(frozen=True)
class BenchRow:
    detector: str
    backbone: str
    image_size: int
    batch_size: int
    model: LatencyStats
    e2e: LatencyStats
    map50: float | None = None
    map50_95: float | None = None

    @property
    def fps(self) -> float:
        return self.e2e.images_per_second

    @property
    def ms_per_image(self) -> float:
        return self.e2e.ms_per_image


def environment_header(device: str, threads: int) -> str:
    """Device and software versions, printed above every table."""
    import torchvision
    import ultralytics

    cpu = platform.processor() or platform.machine()
    dev = torch.cuda.get_device_name(0) if device.startswith("cuda") else f"CPU ({cpu}), {threads} thread(s)"
    return (f"device: {dev} | torch {torch.__version__} | torchvision {torchvision.__version__} | "
            f"ultralytics {ultralytics.__version__} | python {platform.python_version()}")


def synthetic_images(folder: Path, count: int, size: int, seed: int = 0) -> list[Path]:
    """``count`` random JPEGs of ``size x size`` in ``folder`` (timing inputs when no dataset is given)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"bench_{size}_{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def _decode(paths: Sequence[Path]) -> list[torch.Tensor]:
    return [read_image(p).float().div_(255) for p in paths]


def _timed_calls(model: nn.Module, batch_paths: Sequence[Path], device: str) -> dict[str, Callable[[], object]]:
    """The two measured calls of one detector: on decoded images, and from the files."""
    images = [im.to(device) for im in _decode(batch_paths)]
    return {"model": lambda: model(images),
            "e2e": lambda: model([im.to(device) for im in _decode(batch_paths)])}


def time_interleaved(models: dict[str, nn.Module], batch_paths: Sequence[Path], device: str, warmup: int,
                     iterations: int) -> dict[str, tuple[LatencyStats, LatencyStats]]:
    """(model, e2e) latency of each detector, timed round-robin.

    Each round times every detector once, so a slow spell of a shared machine hits all of them
    alike and the ratios between rows stay meaningful.
    """
    calls = {name: _timed_calls(model, batch_paths, device) for name, model in models.items()}
    samples: dict[str, dict[str, list[float]]] = {name: {"model": [], "e2e": []} for name in models}
    with torch.inference_mode():
        for _ in range(warmup):
            for fns in calls.values():
                fns["model"]()
        for _ in range(iterations):
            for name, fns in calls.items():
                for kind, fn in fns.items():
                    samples[name][kind].append(time_call(fn, device))
    batch = len(batch_paths)
    return {name: (summarize(s["model"], batch), summarize(s["e2e"], batch)) for name, s in samples.items()}


def bench(detectors: Sequence[str | DetectorSpec], image_sizes: Iterable[int], batch_sizes: Iterable[int],
          paths: Sequence[Path], class_names: Sequence[str] | None = None, device: str = "cpu", warmup: int = 3,
          iterations: int = 10, progress: bool = True) -> list[BenchRow]:
    """Time every detector (registry names or specs) at every (image size, batch size) on the
    images at ``paths``; ``class_names``: the classes registry detectors are built for."""
    from tqdm import tqdm

    specs = [as_spec(d) for d in detectors]
    rows = []
    for size in tqdm(list(image_sizes), desc="bench sizes", disable=not progress):
        models = {spec.label: build_for_bench(spec, size, device, class_names) for spec in specs}
        for batch in batch_sizes:
            batch_paths = [paths[i % len(paths)] for i in range(batch)]
            stats = time_interleaved(models, batch_paths, device, warmup, iterations)
            rows += [BenchRow(spec.label, backbone_of(spec), size, batch, *stats[spec.label]) for spec in specs]
    return rows


def as_spec(detector: str | DetectorSpec) -> DetectorSpec:
    return detector if isinstance(detector, DetectorSpec) else DetectorSpec(name=detector)


def backbone_of(spec: DetectorSpec) -> str:
    """The backbone shown in the table: the registry's, or the one a checkpoint was trained with."""
    if spec.name is not None:
        return detector_entry(spec.name).backbone
    config = load_checkpoint(spec.checkpoint).config
    return str((config.get("detector_kwargs") or {}).get("backbone", config.get("detector", "-")))


def build_for_bench(spec: DetectorSpec, image_size: int, device: str,
                    class_names: Sequence[str] | None = None) -> nn.Module:
    """The detector of ``spec`` at ``image_size``, in eval mode on ``device``, fused where it can be."""
    model, _ = replace(spec, image_size=(image_size,)).load(device, class_names)
    if hasattr(model, "fuse"):
        model.fuse()
    return model


def markdown_table(rows: Sequence[BenchRow], reference: str | None = None) -> str:
    """The seed-style table; ``ratio`` is e2e ms/img relative to ``reference`` (default: first row)."""
    ref = next((r for r in rows if r.detector == reference), rows[0]) if rows else None
    head = ("| detector | backbone | size | batch | mAP50 | mAP50-95 | FPS | ms/img | model ms (p90) "
            "| e2e ms (p90) | ratio |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        acc = (f"{r.map50:.3f}", f"{r.map50_95:.3f}") if r.map50 is not None else ("-", "-")
        ratio = r.ms_per_image / ref.ms_per_image if ref else 1.0
        lines.append(f"| {r.detector} | {r.backbone} | {r.image_size} | {r.batch_size} | {acc[0]} | {acc[1]} "
                     f"| {r.fps:.1f} | {r.ms_per_image:.1f} | {r.model.median_ms:.1f} ({r.model.p90_ms:.1f}) "
                     f"| {r.e2e.median_ms:.1f} ({r.e2e.p90_ms:.1f}) | {ratio:.2f}x |")
    return head + "\n".join(lines) + "\n"


def rows_to_json(rows: Sequence[BenchRow]) -> list[dict]:
    return [dict(asdict(r), fps=r.fps, ms_per_image=r.ms_per_image) for r in rows]


def scatter_plot(rows: Sequence[BenchRow], path: Path) -> Path:
    """Accuracy (mAP50-95) against speed (ms/img) for the rows that have accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [r for r in rows if r.map50_95 is not None]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for r in scored:
        ax.scatter(r.ms_per_image, r.map50_95, s=40)
        ax.annotate(f"{r.detector} @{r.image_size}", (r.ms_per_image, r.map50_95), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("end-to-end latency (ms / image, lower is better)")
    ax.set_ylabel("mAP50-95 (higher is better)")
    ax.set_title("accuracy vs speed")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def accuracy(model: nn.Module, split: DatasetSplit, batch_size: int, device: str) -> tuple[float, float]:
    """(mAP50, mAP50-95) of ``model`` on ``split`` by pycocotools."""
    stats = evaluate_detector(model, split, device=device, batch_size=batch_size, progress=False).report.coco.stats
    return stats["AP50"], stats["AP"]


def run_bench(detectors: Sequence[str | DetectorSpec], image_sizes: Sequence[int], batch_sizes: Sequence[int],
              out_dir: Path, dataset: Path | None = None, split: str | None = None, threads: int | None = None,
              device: str = "cpu", warmup: int = 3, iterations: int = 10, num_classes: int | None = None,
              max_images: int | None = None) -> list[BenchRow]:
    """Time (and with ``dataset``, score) every detector; write ``bench.md``, ``bench.json``, ``bench.png``.

    ``detectors``: registry names or :class:`~detect.models.loading.DetectorSpec` (a checkpoint, or a
    name with local weights). ``num_classes``: head size of registry detectors without a dataset
    (default: each builder's own).
    """
    if not detectors:
        raise ValueError("expected at least one detector: a registry name or --checkpoint PATH")
    if threads:
        torch.set_num_threads(threads)
    specs = [as_spec(d) for d in detectors]
    data = load_split(dataset, split) if dataset else None
    class_names = None if num_classes is None else [str(k) for k in range(num_classes)]
    if data is not None:
        class_names = data.class_names
        if max_images:
            data = data.with_images(data.images[:max_images])
        paths = [data.image_path(r) for r in data.images[:16]]
    else:
        paths = synthetic_images(out_dir / "inputs", 8, max(image_sizes))
    rows = bench(specs, image_sizes, batch_sizes, paths, class_names, device, warmup, iterations)
    if data is not None:
        rows = with_accuracy(rows, specs, data, device)
    header = environment_header(device, torch.get_num_threads())
    table = markdown_table(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.md").write_text(f"{header}\n\n{table}")
    (out_dir / "bench.json").write_text(json.dumps({"environment": header, "rows": rows_to_json(rows)}, indent=1))
    if data is not None:
        scatter_plot(rows, out_dir / "bench.png")
    print(header, table, sep="\n\n")
    return rows


def with_accuracy(rows: Sequence[BenchRow], specs: Sequence[DetectorSpec], data: DatasetSplit,
                  device: str) -> list[BenchRow]:
    """The rows with mAP filled in, scored once per (detector, image size)."""
    by_label = {spec.label: spec for spec in specs}
    scores: dict[tuple[str, int], tuple[float, float]] = {}
    for row in rows:
        key = (row.detector, row.image_size)
        if key not in scores:
            model = build_for_bench(by_label[row.detector], row.image_size, device, data.class_names)
            scores[key] = accuracy(model, data, batch_size=8, device=device)
    return [replace(r, map50=scores[(r.detector, r.image_size)][0], map50_95=scores[(r.detector, r.image_size)][1])
            for r in rows]
