"""What every ``detect train`` run leaves in its folder, whichever trainer ran it (the project's loop,
:mod:`detect.engine.trainer`, or ultralytics', :mod:`detect.engine.ultralytics_train`): the run
folder check, the result, the training-curve panels and the final test report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from classify.base.device import amp_dtype, resolve_device
from classify.base.history import Panel
from detect.engine.config import DetectTrainConfig
from detect.engine.data import build_eval_loader
from detect.engine.state import RunState
from detect.evaluation.outputs import write_outputs
from detect.inference.evaluate import evaluate_detector
from detect.models.loading import load_detector
from detect.structures import DatasetSplit

#: the x axes of curves.png
CURVE_AXES = (("iteration", "iteration"), ("minutes", "training minutes"))


@dataclass
class TrainResult:
    """What :func:`fit` produced.

    Attributes:
        run_dir: the run folder; ``last``/``best``: its checkpoints.
        best_metric: the validation number that chose ``best`` (``val_AP``...), ``best_value`` its value
            (``None`` without validation).
        history: the rows of ``history.json``.
        test_metrics: summary of the final report on the test split (``None`` without one).
        stop_reason: ``finished``, ``time_budget`` or ``stop_after``.
        iterations: optimiser steps done; ``minutes``: training minutes (all sessions).
    """

    run_dir: Path
    last: Path
    best: Path
    best_metric: str
    best_value: float | None
    history: list[dict[str, Any]]
    test_metrics: dict[str, Any] | None
    stop_reason: str
    iterations: int
    minutes: float


def eval_amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype of evaluation: the training one on CUDA; float32 on the CPU, so the reported
    metrics are those of the float32 model that is saved."""
    return amp_dtype(amp, device) if device.type == "cuda" else None


def log(message: str) -> None:
    tqdm.write(message)


def check_run_dir(config: DetectTrainConfig, resuming: bool) -> Path:
    """The run folder (created later, once the data and the model are known to be good)."""
    run_dir = Path(config.output)
    if not resuming and not config.exist_ok and (run_dir / "last.pt").exists():
        raise FileExistsError(f"{run_dir} already holds a run (last.pt); continue it with 'detect resume "
                              f"{run_dir / 'last.pt'}', or choose another output, or set exist_ok: true")
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"output: {run_dir} exists and is not a folder")
    return run_dir


def curve_panels(state: RunState) -> list[Panel]:
    """Losses (from the loss log) and, once a run has scored val or test, mAP50 and mAP50-95 (from
    the history rows)."""
    rows = state.loss_log or state.history
    losses = sorted({k for r in rows for k in r if k.startswith("loss")}, key=lambda k: (k != "loss", k))
    metrics = [p + m for p in ("val_", "test_") for m in ("AP50", "AP") if any(r.get(p + m) is not None
                                                                             for r in state.history)]
    labels = {k: f"{k.split('_')[0]} mAP{k.split('_', 1)[1][2:] or '50-95'}" for k in metrics}
    panels = [Panel("losses", "mean training loss", losses, rows="losses")]
    return panels + ([Panel("mAP", "COCO mAP", metrics, labels, ylim=(0.0, 1.0))] if metrics else [])


def final_report(checkpoint: Path, split: DatasetSplit, out_dir: Path, config: DetectTrainConfig) -> dict[str, Any]:
    """Score ``checkpoint`` on ``split`` and write metrics.json/.md and the plots into ``out_dir``.

    Returns the report's headline numbers (COCO stats, VOC mAP, P/R/F1) and the timing.
    """
    device = resolve_device(config.device)
    model, class_names = load_detector(checkpoint, device)
    evaluation = evaluate_detector(model, build_eval_loader(split, config, device), class_names, device=device,
                                   amp=eval_amp_dtype(config.amp, device), progress=config.progress,
                                   score_threshold=config.score_threshold)
    source = {"ground_truth": str(config.data), "split": split.name, "images": len(split.images),
              "objects": split.num_objects(), "predictions": None, "model": config.detector,
              "weights": str(checkpoint)}
    written = write_outputs(evaluation.report, split, evaluation.outputs, out_dir, source, None, config.report_examples)
    s = evaluation.report.coco.stats
    log(f"test ({split.name}, {len(split.images)} images) with {checkpoint.name}: AP {s['AP']:.4f}  "
        f"AP50 {s['AP50']:.4f}  AP75 {s['AP75']:.4f}; wrote {', '.join(p.name for p in written)}")
    return evaluation.metrics()
