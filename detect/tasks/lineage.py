"""Trained detectors side by side: test accuracy, size, arithmetic and CPU latency by backend.

The rows of the comparison tables (``tools/bench_yolo.py``; the lineage table): every number of a
row is measured here the same way for every detector family, so the rows compare.

* accuracy: the test report ``detect train`` wrote (``history.json``'s ``test``: COCO ``AP``,
  ``AP50``, ``APs``/``APm``/``APl`` from pycocotools);
* size: parameters of the detector as it runs (a crop rescorer's classifier included);
* arithmetic: GFLOPs (2 x multiply-accumulates, counted by ``torch.utils.flop_counter`` as in
  :mod:`classify.inspect.summary`) of one forward pass on one ``image_size`` square image:
  network, proposal and box heads; element-wise work and NMS count 0;
* latency: median milliseconds an image at batch 1 through the :class:`~detect.inference.predictor.Predictor`
  (decoded images in memory; pre-processing, network and NMS included), eager PyTorch and each
  exported backend measured round-robin in one loop so that a noisy machine slows all alike.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["ModelCost", "backend_latency", "model_cost", "round_robin_times", "run_test_metrics"]

#: score threshold of the latency runs (baked into exported files too: the same NMS work as eager)
LATENCY_CONF = 0.25
#: test-report numbers a row shows
REPORT_KEYS = ("AP50", "AP", "APs", "APm", "APl")


@dataclass(frozen=True)
class ModelCost:
    """``params``: parameters; ``gflops``: 10^9 FLOPs of one image at ``image_size`` px."""

    params: int
    gflops: float
    image_size: int


def model_cost(model: nn.Module, image_size: int) -> ModelCost:
    """Parameters and GFLOPs of ``model`` (Detector contract, eval mode) on one square image."""
    model = model.eval()
    device = next(model.parameters()).device
    image = torch.rand(3, image_size, image_size, generator=torch.Generator().manual_seed(0)).to(device)
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model([image])
    params = sum(p.numel() for p in model.parameters())
    return ModelCost(params, counter.get_total_flops() / 1e9, image_size)


@dataclass
class Latency:
    """Median milliseconds an image by backend, and the reason a backend was not measured."""

    median_ms: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def backend_latency(model: nn.Module, class_names: list[str], images: Sequence[torch.Tensor], out_dir: Path,
                    backends: Sequence[str] = ("eager", "onnxruntime"), rounds: int = 3) -> Latency:
    """Batch-1 latency of ``model`` on ``images`` (``Tensor[3,H,W]`` in [0, 1]) by backend.

    ``eager`` is the module itself; ``onnxruntime`` / ``torchscript`` run the file
    :func:`detect.export.exporter.export_detector` writes into ``out_dir``.  A model that cannot be
    exported gets the exporter's reason in ``skipped``.  Every backend sees every image once a
    round, in turn; the first pass is a warm-up.
    """
    from detect.export.exporter import export_detector
    from detect.export.graph import NotExportable
    from detect.inference.predictor import Predictor
    from detect.models.postprocess import configure_postprocess

    configure_postprocess(model, score_threshold=LATENCY_CONF)
    out_dir.mkdir(parents=True, exist_ok=True)
    runners, result = {}, Latency()
    for backend in backends:
        if backend == "eager":
            runners[backend] = Predictor(model, class_names=class_names, conf=LATENCY_CONF)
            continue
        fmt = "onnx" if backend == "onnxruntime" else backend
        try:
            exported = export_detector(model, class_names, out_dir / f"model.{fmt}", fmt)
        except NotExportable as exc:
            result.skipped[backend] = str(exc)
            continue
        runners[backend] = Predictor(exported.path, conf=LATENCY_CONF)
    for runner in runners.values():
        runner(list(images[:2]))  # warm-up
    times = round_robin_times(runners, images, rounds)
    result.median_ms = {name: 1000 * statistics.median(values) for name, values in times.items()}
    return result


def round_robin_times(runners: Mapping[str, Callable[[Any], Any]], images: Sequence[Any],
                      rounds: int) -> dict[str, list[float]]:
    """Seconds of each ``runner(image)`` call, by runner: every runner takes every image in turn,
    ``rounds`` times over, so that a noisy machine slows all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for image in images:
            for name, runner in runners.items():
                start = time.perf_counter()
                runner(image)
                times[name].append(time.perf_counter() - start)
    return times


def run_test_metrics(run_dir: Path) -> dict[str, float] | None:
    """The test report's numbers (:data:`REPORT_KEYS`) of a ``detect train`` run folder, or ``None``
    when the run has not finished its report."""
    path = Path(run_dir) / "history.json"
    if not path.is_file():
        return None
    test: dict[str, Any] | None = json.loads(path.read_text()).get("test")
    if not test:
        return None
    return {key: float(test[key]) for key in REPORT_KEYS if key in test}
