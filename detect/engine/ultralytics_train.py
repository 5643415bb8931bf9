"""``detect train --detector yolov8n|yolov8s|yolo11n|yolo11s``: ultralytics' own trainer inside the
project's run, offline.

:func:`detect.engine.trainer.fit` hands a run here when its detector is an ultralytics peer
(:func:`trains_with_ultralytics`). The run takes the same :class:`DetectTrainConfig` and leaves the
same run folder as the project's loop::

    last.pt, best.pt   the project's checkpoint format (weights of an UltralyticsDetector built from
                       the model YAML with the dataset's classes, the config, class names, metrics)
    config.yaml, history.json, curves.png
    metrics.json, metrics.md, pr_curves.png, confusion_matrix.png, examples.png
                       the final report of best.pt on the test split, by the project's evaluator
    ultralytics/       ultralytics' own outputs (weights/, results.csv, its plots) and, under
                       data/, the dataset in its layout (:mod:`detect.data.ultralytics_layout`)

How the settings map (:func:`train_arguments`; the log lists the arguments and every note):

* length: ``epochs``; ``max_iters`` -> ``ceil(max_iters / batches per epoch)`` epochs (ultralytics
  trains whole epochs); ``time_budget_min`` -> ``time`` in hours, which in ultralytics overrides
  ``epochs``: it trains until the budget is spent, its schedule fitted to it.
* optimiser: ``optimizer`` sgd/adamw -> SGD/AdamW, ``lr`` -> ``lr0``, ``momentum``,
  ``weight_decay``, ``warmup_iters`` -> ``warmup_epochs`` (iterations / batches per epoch).
* schedule: cosine -> ``cos_lr`` with ``lrf = min_lr_ratio``; step -> ultralytics' linear decay
  to the same final LR (``lrf = gamma ** len(milestones)``); constant -> ``lrf = 1``.
* augmentation: ``hflip`` -> ``fliplr``; ``color_jitter`` -> ``hsv_s`` = ``hsv_v`` (no hue jitter);
  ``scale_jitter`` (low, high) -> ``scale = max(1 - low, high - 1)``; ``translate`` -> ``translate``
  0.1 (a tenth of the image) or 0; ``mosaic``, ``close_mosaic`` and ``mixup`` as they are (all off
  by default, as in the project's loop; ultralytics' own defaults would turn mosaic on).
* run: ``batch``, ``imgsz``, ``seed`` (``deterministic`` on), ``device`` (auto resolved; cuda:N ->
  N), ``workers``, ``amp`` (bf16/fp16 -> ultralytics' AMP on CUDA; float32 on the CPU, which also
  skips its AMP check, which would fetch a model), ``channels_last``, ``freeze`` (prefixes
  ``net.model.<i>`` -> layer indices; other prefixes are an error), ``val`` (off without a
  validation split or with ``eval_period: 0``; ultralytics still validates after the last epoch).
* not applicable, logged as notes: ``ema`` off (ultralytics always keeps an EMA), ``grad_clip``,
  ``beta2``, ``warmup_factor``, ``decay_norm_and_bias``, ``letterbox: false``, ``eval_period > 1``,
  ``test_period``, ``eval_every_iters``, and ``best_metric`` (best.pt is ultralytics' pick by its
  own fitness). ``detect resume`` and ``stop_after`` are refused.

``detector_kwargs: {weights: file.pt}`` starts from a local ultralytics checkpoint of the same
model; without it the model is built from its YAML (nothing is downloaded). History rows map
ultralytics' ``results.csv``: ``loss_box``/``loss_cls``/``loss_dfl`` (``loss`` their sum), and
``val_AP`` (mAP50-95), ``val_AP50``, ``val_precision``, ``val_recall`` and ``val_loss_*`` from
ultralytics' validator; ``minutes`` is ultralytics' clock (validation included).
"""

from __future__ import annotations

import csv
import math
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from classify.base.checkpoint import load_state_strict, save_checkpoint
from classify.base.config import config_to_dict, save_config
from classify.base.device import resolve_device
from classify.base.history import plot_curves, write_history
from detect.data.ultralytics_layout import UltralyticsLayout, write_ultralytics_layout
from detect.engine.config import DetectTrainConfig
from detect.engine.data import load_training_splits
from detect.engine.run_folder import CURVE_AXES, TrainResult, check_run_dir, curve_panels, final_report, log
from detect.engine.state import RunState
from detect.models.loading import build_detector
from detect.models.registry import detector_entry

SUBDIR = "ultralytics"  # ultralytics' outputs inside the run folder; its dataset under SUBDIR/data
OPTIMIZERS = {"sgd": "SGD", "adamw": "AdamW"}
LOSS_COLUMNS = {"train/box_loss": "loss_box", "train/cls_loss": "loss_cls", "train/dfl_loss": "loss_dfl"}
VAL_COLUMNS = {"metrics/mAP50-95(B)": "val_AP", "metrics/mAP50(B)": "val_AP50",
               "metrics/precision(B)": "val_precision", "metrics/recall(B)": "val_recall",
               "val/box_loss": "val_loss_box", "val/cls_loss": "val_loss_cls", "val/dfl_loss": "val_loss_dfl"}
#: the entries of ultralytics' ``train_metrics`` that identify the epoch its best.pt comes from
BEST_KEYS = ("metrics/mAP50-95(B)", "metrics/mAP50(B)", "metrics/precision(B)", "metrics/recall(B)")
NO_EARLY_STOP = 1_000_000  # ultralytics' patience: the project's runs last what they are configured to


def trains_with_ultralytics(name: str) -> bool:
    """Whether ``detect train`` runs ultralytics' trainer for registry detector ``name`` (a YOLO peer)."""
    entry = detector_entry(name)
    return entry.family == "yolo" and entry.peer


@dataclass(frozen=True)
class _Plan:
    """What a run needs before it trains: checked data, the model template, the arguments."""

    splits: dict[str, Any]
    class_names: list[str]
    template: nn.Module  # an UltralyticsDetector from the model YAML with the dataset's classes
    weights: Path | None
    batches_per_epoch: int
    epochs: int
    args: dict[str, Any]
    notes: list[str]


# ----------------------------------------------------------------------------- settings


def train_arguments(config: DetectTrainConfig, data_yaml: Path, batches_per_epoch: int, device: torch.device,
                    project: Path) -> tuple[dict[str, Any], list[str]]:
    """The keyword arguments of ultralytics' ``YOLO(...).train`` for ``config``, and notes on the
    settings that map only in part or not at all (see the module docstring).

    Raises:
        ValueError: a ``freeze`` prefix that names no ultralytics layer (``net.model.<i>``).
    """
    assert batches_per_epoch > 0, "an epoch has at least one batch"
    notes: list[str] = []
    epochs = config.epochs
    if config.max_iters is not None:
        epochs = math.ceil(config.max_iters / batches_per_epoch)
        notes.append(f"max_iters {config.max_iters} -> {epochs} epoch(s) of {batches_per_epoch} batches "
                     "(ultralytics trains whole epochs)")
    args: dict[str, Any] = {
        "data": str(data_yaml.resolve()), "epochs": epochs, "batch": config.batch_size, "imgsz": config.image_size,
        "optimizer": OPTIMIZERS[config.optimizer], "lr0": config.lr, "momentum": config.momentum,
        "weight_decay": config.weight_decay, "warmup_epochs": config.warmup_iters / batches_per_epoch,
        **_schedule_arguments(config, notes), **_augmentation_arguments(config, notes),
        "seed": config.seed, "deterministic": True, "device": _device_argument(device),
        "workers": config.num_workers, "amp": config.amp != "none" and device.type == "cuda",
        "val": config.val_split is not None and config.eval_period != 0, "plots": True,
        "patience": NO_EARLY_STOP, "project": str(project.resolve().parent), "name": project.name, "exist_ok": True,
        "verbose": config.progress,
    }
    if config.time_budget_min is not None:
        args["time"] = config.time_budget_min / 60
        notes.append(f"time_budget_min {config.time_budget_min:g} -> time {args['time']:.4g} h: ultralytics trains "
                     "until the budget is spent and fits its schedule to it (time overrides epochs)")
    if config.freeze:
        args["freeze"] = freeze_layers(config.freeze)
    if config.channels_last:
        args["channels_last"] = True
    if config.amp != "none" and device.type != "cuda":
        notes.append(f"amp {config.amp}: ultralytics trains in float32 on the CPU")
    notes += _unmapped_notes(config)
    return args, notes


def _schedule_arguments(config: DetectTrainConfig, notes: list[str]) -> dict[str, Any]:
    if config.schedule == "cosine":
        return {"cos_lr": True, "lrf": config.min_lr_ratio}
    if config.schedule == "constant":
        return {"cos_lr": False, "lrf": 1.0}
    final = _tidy(config.gamma ** len(config.milestones))
    notes.append(f"schedule step: ultralytics has no steps; its linear decay ends at the same LR (lrf {final:g})")
    return {"cos_lr": False, "lrf": final}


def _augmentation_arguments(config: DetectTrainConfig, notes: list[str]) -> dict[str, Any]:
    args: dict[str, Any] = {"fliplr": config.hflip, "flipud": 0.0, "hsv_h": 0.0, "hsv_s": config.color_jitter,
                            "hsv_v": config.color_jitter}
    if config.scale_jitter is None:
        args["scale"] = 0.0
    else:
        low, high = config.scale_jitter
        args["scale"] = _tidy(max(1 - low, high - 1, 0.0))
        if not math.isclose(1 - low, high - 1):
            notes.append(f"scale_jitter {list(config.scale_jitter)} -> scale {args['scale']:g} (ultralytics' range "
                         "is symmetric: 1 +- scale)")
    args.update(translate=0.1 if config.translate else 0.0, mosaic=config.mosaic, close_mosaic=config.close_mosaic,
                mixup=config.mixup)
    return args


def _tidy(value: float) -> float:
    """``value`` to 12 significant digits (``1 - 0.8`` -> ``0.2``), as it is logged and stored."""
    return float(f"{value:.12g}")


def _device_argument(device: torch.device) -> str:
    """ultralytics' ``device``: ``cpu`` or a CUDA index."""
    return "cpu" if device.type == "cpu" else str(device.index or 0)


def freeze_layers(prefixes: tuple[str, ...]) -> list[int]:
    """``freeze`` prefixes of an UltralyticsDetector's parameters (``net.model.<i>``) as ultralytics'
    layer indices.

    Raises:
        ValueError: a prefix of another form, naming it.
    """
    layers = []
    for prefix in prefixes:
        parts = prefix.rstrip(".").split(".")
        if len(parts) != 3 or parts[:2] != ["net", "model"] or not parts[2].isdigit():
            raise ValueError(f"freeze: ultralytics' trainer freezes whole layers; expected prefixes "
                             f"'net.model.<index>' (e.g. net.model.0 for its first layer), got {prefix!r}")
        layers.append(int(parts[2]))
    return sorted(set(layers))


def _unmapped_notes(config: DetectTrainConfig) -> list[str]:
    checks = [
        (not config.ema, "ema false: ultralytics always keeps an EMA of the weights and saves it"),
        (config.grad_clip is not None, "grad_clip: ultralytics clips gradients its own way"),
        (config.beta2 != 0.999, f"beta2 {config.beta2:g}: ultralytics' AdamW keeps beta2 0.999"),
        (config.decay_norm_and_bias, "decay_norm_and_bias: ultralytics never decays norm weights and biases"),
        (not config.letterbox, "letterbox false: ultralytics trains on letterboxed squares"),
        (config.eval_period > 1, f"eval_period {config.eval_period}: ultralytics validates every epoch"),
        (config.test_period > 0 or config.eval_every_iters is not None,
         ("test_period / eval_every_iters: ultralytics scores only at epoch ends; the test split is scored once, "
          "in the final report")),
        (config.best_metric != "AP", (f"best_metric {config.best_metric}: best.pt is ultralytics' pick by its "
                                      "own fitness (mostly mAP50-95)")),
    ]
    return [text for applies, text in checks if applies]


# ----------------------------------------------------------------------------- set-up


def _plan(config: DetectTrainConfig, run_dir: Path) -> _Plan:
    """Check the data and the model (nothing written yet) and work out the arguments."""
    splits = load_training_splits(config)
    class_names = list(splits["train"].class_names)
    kwargs = dict(config.detector_kwargs)
    weights = kwargs.pop("weights", None)
    try:
        template = build_detector(config.detector, len(class_names), config.image_size, kwargs)
    except ValueError as exc:
        raise ValueError(f"{config.detector} at image_size {config.image_size}: {exc}") from None
    if weights is not None:
        weights = Path(weights)
        _check_weights(weights, config.detector, template)
    device = resolve_device(config.device)
    batches = math.ceil(len(splits["train"].images) / config.batch_size)
    args, notes = train_arguments(config, run_dir / SUBDIR / "data" / "data.yaml", batches, device,
                                  run_dir / SUBDIR)
    return _Plan(splits, class_names, template, weights, batches, args["epochs"], args, notes)


def _check_weights(path: Path, detector: str, template: nn.Module) -> None:
    """``path`` must hold the model ``detector`` builds (another size or family would not fit its checkpoints)."""
    from detect.models.peers.ultralytics import UltralyticsDetector

    got, want = UltralyticsDetector.from_weights(path).config, template.config
    names = [(Path(str(c.get("yaml_file") or "")).stem.removesuffix(str(c.get("scale") or "")), c.get("scale"))
             for c in (got, want)]
    if got.get("yaml_file") and names[0] != names[1]:
        raise ValueError(f"detector_kwargs.weights: {path} holds a {got.get('yaml_file')} model (scale "
                         f"{got.get('scale')}), but the detector {detector!r} is {want.get('yaml_file')}; pass "
                         "weights of the same model or choose the matching --detector")


def _start_model(plan: _Plan, detector: str) -> Any:
    from ultralytics import YOLO

    from detect.models.peers.ultralytics import model_yaml

    return YOLO(str(plan.weights) if plan.weights is not None else model_yaml(detector))


# ----------------------------------------------------------------------------- results


def history_rows(results_csv: Path, batches_per_epoch: int, with_val: bool) -> list[dict[str, Any]]:
    """ultralytics' ``results.csv`` as the project's history rows (one a completed epoch).

    ``with_val`` false drops the validation columns (ultralytics then scored the training images).

    Raises:
        FileNotFoundError: no ``results.csv``, or one without rows (ultralytics completed no epoch).
    """
    table = []
    if results_csv.is_file():
        with results_csv.open(newline="", encoding="utf-8") as f:
            table = [{k.strip(): v.strip() for k, v in row.items() if k} for row in csv.DictReader(f)]
    if not table:
        raise FileNotFoundError(f"{results_csv}: ultralytics wrote no results (no epoch was completed)")
    rows = []
    for line in table:
        epoch, minutes = int(float(line["epoch"])), float(line.get("time") or "nan") / 60
        losses = {ours: float(line[col]) for col, ours in LOSS_COLUMNS.items() if line.get(col)}
        row = {"epoch": epoch, "iteration": epoch * batches_per_epoch, "epochs": float(epoch), "partial": False,
               "minutes": minutes, "wall_minutes": minutes, "lr": float(line.get("lr/pg0") or "nan"),
               "loss": sum(losses.values()), **losses}
        if with_val:
            row.update({ours: float(line[col]) for col, ours in VAL_COLUMNS.items() if line.get(col)})
        rows.append(row)
    return rows


def best_row(rows: list[dict[str, Any]], train_metrics: dict[str, Any]) -> dict[str, Any]:
    """The history row that ultralytics' best.pt was saved at: the last one whose validation numbers
    are nearest its ``train_metrics`` (both rounded alike by ultralytics)."""
    keys = [(VAL_COLUMNS[k], float(train_metrics[k])) for k in BEST_KEYS if k in train_metrics]
    distance = [sum(abs(r.get(ours, math.inf) - value) for ours, value in keys) for r in rows]
    return rows[max(i for i, d in enumerate(distance) if d == min(distance))]


def _row_metrics(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k.startswith(("val_", "test_", "epoch", "iteration"))}


def save_project_checkpoint(source: Path, out: Path, template: nn.Module, config: DetectTrainConfig,
                            class_names: list[str], row: dict[str, Any] | None) -> Path:
    """Write ultralytics' ``source`` weights as a project checkpoint ``out`` (loadable by
    :func:`detect.models.loading.load_detector`).

    The config stored is ``config`` without ``detector_kwargs.weights``: the architecture is the
    model YAML with the dataset's classes, the weights are the checkpoint's own.
    """
    from detect.models.peers.ultralytics import read_ultralytics_weights

    net, _ = read_ultralytics_weights(source)
    names = [net.names[i] for i in range(len(net.names))]
    assert names == class_names, f"ultralytics trained on {names}, the dataset has {class_names}"
    load_state_strict(template.net, net.state_dict(), f"{source} (ultralytics weights of {config.detector!r})")
    stored = replace(config, detector_kwargs={k: v for k, v in config.detector_kwargs.items() if k != "weights"})
    extra = {"trainer": "ultralytics", "ultralytics_weights": str(source),
             "initial_weights": config.detector_kwargs.get("weights")}
    return save_checkpoint(out, template.state_dict(), config=config_to_dict(stored), class_names=class_names,
                           metrics=_row_metrics(row or {}), extra=extra)


# ----------------------------------------------------------------------------- the run


def fit_ultralytics(config: DetectTrainConfig, resume: str | Path | None = None,
                    stop_after: int | None = None) -> TrainResult:
    """Train ``config.detector`` with ultralytics' trainer and leave the project's run folder (see
    the module docstring).

    Raises:
        ValueError: ``resume`` or ``stop_after`` (not supported), bad data or settings, weights of
            another model; raised before anything is written.
        FileExistsError: ``config.output`` already holds a run and ``exist_ok`` is false.
    """
    if resume is not None:
        raise ValueError(f"{resume}: a run of ultralytics' trainer cannot be resumed by detect resume; start a new "
                         f"run, e.g. from its weights: --detector-kwargs '{{weights: <run>/{SUBDIR}/weights/last.pt}}'")
    if stop_after is not None:
        raise ValueError("stop_after: not supported by ultralytics' trainer; use epochs, max_iters or time_budget_min")
    run_dir = check_run_dir(config, False)
    plan = _plan(config, run_dir)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    shutil.rmtree(run_dir / SUBDIR, ignore_errors=True)  # a previous run's (exist_ok): stale results.csv, weights
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    layout = write_ultralytics_layout(plan.splits, run_dir / SUBDIR / "data")
    _log_plan(config, plan, layout)
    from detect.offline import offline_train_settings

    offline_train_settings()
    _start_model(plan, config.detector).train(**plan.args)
    return _finish(config, plan, layout, run_dir)


def _log_plan(config: DetectTrainConfig, plan: _Plan, layout: UltralyticsLayout) -> None:
    start = f"from {plan.weights}" if plan.weights is not None else "from its YAML"
    length = (f"{plan.epochs} epoch(s)" if config.time_budget_min is None
              else f"{config.time_budget_min:g} minutes (ultralytics' time budget)")
    log(f"training {config.detector} ({start}) with ultralytics' trainer on {config.data} "
        f"({layout.images['train']} images, {len(plan.class_names)} classes) for {length}, "
        f"{plan.batches_per_epoch} batches an epoch; dataset in ultralytics' layout: {layout.yaml_path}")
    if layout.val_is_train:
        log("no validation split: ultralytics' trainer needs one, so data.yaml names the training images as val; "
            "those scores are left out of history.json and best.pt is the final weights")
    log("ultralytics arguments: " + ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                                              for k, v in plan.args.items()))
    for note in plan.notes:
        log(f"note: {note}")


def _finish(config: DetectTrainConfig, plan: _Plan, layout: UltralyticsLayout, run_dir: Path) -> TrainResult:
    """Checkpoints, history, curves and the final report from ultralytics' outputs."""
    from detect.models.peers.ultralytics import read_ultralytics_weights

    out = run_dir / SUBDIR
    with_val = not layout.val_is_train
    rows = history_rows(out / "results.csv", plan.batches_per_epoch, with_val)
    if with_val and not plan.args["val"]:  # eval_period 0: ultralytics validated after the last epoch only
        rows = [{k: v for k, v in r.items() if not k.startswith("val_")} for r in rows[:-1]] + rows[-1:]
    last, best_source = out / "weights" / "last.pt", out / "weights" / "best.pt"
    best = None
    if with_val and best_source.is_file():
        best = best_row(rows, read_ultralytics_weights(best_source)[1].get("train_metrics") or {})
    else:
        best_source = last
    metric = f"val_{config.best_metric}"
    save_project_checkpoint(last, run_dir / "last.pt", plan.template, config, plan.class_names, rows[-1])
    save_project_checkpoint(best_source, run_dir / "best.pt", plan.template, config, plan.class_names,
                            best or rows[-1])
    stop = "time_budget" if config.time_budget_min is not None else "finished"  # time overrides epochs
    best_value = None if best is None else best.get(metric)
    summary = {"best_metric": metric, "best_value": best_value, "best_epoch": None if best is None else best["epoch"],
               "total_iterations": rows[-1]["iteration"], "batches_per_epoch": plan.batches_per_epoch,
               "trainer": "ultralytics", "val_metrics_by": "ultralytics' validator" if with_val else None,
               "ultralytics_dir": str(out)}
    _write_history(config, rows, run_dir, {**summary, "stop_reason": stop})
    test = None
    if "test" in plan.splits:
        test = final_report(run_dir / "best.pt", plan.splits["test"], run_dir, config)
        _write_history(config, rows, run_dir, {**summary, "stop_reason": stop, "test": test})
    return TrainResult(run_dir, run_dir / "last.pt", run_dir / "best.pt", metric, best_value, rows, test, stop,
                       rows[-1]["iteration"], rows[-1]["minutes"])


def _write_history(config: DetectTrainConfig, rows: list[dict[str, Any]], run_dir: Path,
                   summary: dict[str, Any]) -> None:
    write_history(run_dir / "history.json", rows, {**summary, "losses": []})
    plot_curves(rows, run_dir / "curves.png", curve_panels(RunState(history=rows)), CURVE_AXES,
                title=f"{config.detector} on {config.data} (ultralytics' trainer)", series={"losses": rows})
