"""``fit(config)``: train a registry detector, validate it, keep the best and last checkpoints,
and score the best one on the test split.

Run folder (``config.output``)::

    last.pt        weights + config + class names + val metrics + everything to resume
    best.pt        the weights with the best validation ``best_metric`` (the final ones
                   without a validation split)
    config.yaml    the resolved config
    history.json   one row per epoch (and per evaluation mark): mean losses, lr, val (and test)
                   metrics, minutes; the loss log (mean losses every few iterations) under "losses"
    curves.png     losses and val/test mAP against iterations and against training minutes
    metrics.json, metrics.md, pr_curves.png, confusion_matrix.png, examples.png
                   the final report of best.pt on the test split

A history row holds plain numbers: ``epoch``, ``iteration``, ``epochs`` (fractional),
``partial`` (written at a stop mid-epoch), ``minutes`` (training only: validation, checkpoints and
reports excluded; summed over resumed sessions), ``wall_minutes``, ``lr``, the mean ``loss*`` and
the ``val_*`` / ``test_*`` metrics (COCO stats, VOC mAP, P/R/F1) — enough to draw accuracy
against CPU minutes from the file alone.

``resume=PATH`` (a ``last.pt``) continues exactly where the run stopped, mid-epoch included:
weights, EMA, optimiser, LR schedule, gradient scaler, counters, timers and RNG states are
restored, and sampling and augmentation are seeded by ``(seed, epoch, index)``; on the CPU
with ``num_workers`` 0 the result equals the uninterrupted run bit for bit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from classify.base.checkpoint import load_checkpoint, save_checkpoint
from classify.base.config import config_to_dict, save_config
from classify.base.device import amp_dtype, resolve_device, slow_bf16_note, synchronize
from classify.base.ema import ModelEMA
from classify.base.history import metric_row, plot_curves, write_history
from classify.base.optim import build_optimizer, freeze_by_prefix, param_groups
from classify.base.rng import capture_rng, restore_rng, seed_everything
from classify.base.schedule import LRSchedule, build_scheduler, milestone_iterations
from detect.engine.config import DetectTrainConfig, close_mosaic_epoch, total_iterations
from detect.engine.data import build_eval_loader, build_train_loader, load_training_splits
from detect.engine.loop import train_one_epoch
from detect.engine.run_folder import (
    CURVE_AXES,
    TrainResult,
    check_run_dir,
    curve_panels,
    eval_amp_dtype,
    final_report,
    log,
)
from detect.engine.state import RunState
from detect.inference.evaluate import evaluate_detector
from detect.models.loading import build_detector
from detect.models.registry import check_trainable
from detect.structures import DatasetSplit

STOP_FINISHED, STOP_TIME_BUDGET, STOP_REQUESTED = "finished", "time_budget", "stop_after"
LOSS_LOG_POINTS = 300  # rows of the loss log (the training curve by iteration) in a full run


@dataclass
class _Run:
    """Everything a training session works with (built once by :func:`_build`)."""

    config: DetectTrainConfig
    device: torch.device
    splits: dict[str, DatasetSplit]
    class_names: list[str]
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    ema: ModelEMA | None
    loaders: dict[str, Any]
    sampler: Any
    train_dataset: Any
    total_iters: int
    state: RunState

    @property
    def configured_iters(self) -> int:
        """The run's length as configured (``total_iters`` is shorter once fitted to a time budget)."""
        return total_iterations(self.config, self.sampler.num_batches())

    @property
    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    @property
    def train_dtype(self) -> torch.dtype | None:
        """Autocast dtype of the training steps (``None``: float32)."""
        return amp_dtype(self.config.amp, self.device)

    @property
    def eval_dtype(self) -> torch.dtype | None:
        return eval_amp_dtype(self.config.amp, self.device)


# ----------------------------------------------------------------------------- set-up


def _build(config: DetectTrainConfig) -> _Run:
    """Data, model, optimiser, schedule, scaler and EMA of a fresh run (seeded)."""
    check_trainable(config.detector)
    device = resolve_device(config.device)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    elif config.amp == "fp16":
        log("amp: fp16 is used on CUDA only; training in float32 on the CPU (amp: bf16 runs there)")
    elif note := slow_bf16_note(config.amp, device):
        log(note)
    seed_everything(config.seed)
    splits = load_training_splits(config)
    class_names = list(splits["train"].class_names)
    train_loader, sampler, train_dataset = build_train_loader(splits["train"], config, device)
    loaders = {"train": train_loader, **{role: build_eval_loader(splits[role], config, device)
                                         for role in ("val", "test") if role in splits}}
    model = build_detector(config.detector, len(class_names), config.image_size, config.detector_kwargs)
    if getattr(model, "rescorer", None) is not None:
        model.rescorer.bind(class_names)
    frozen = freeze_by_prefix(model, config.freeze) if config.freeze else []
    if frozen:
        log(f"froze {len(frozen)} parameter tensors under {list(config.freeze)}")
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    total = total_iterations(config, sampler.num_batches())
    optimizer, scheduler = _optimisation(config, model, total)
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp == "fp16" and device.type == "cuda")
    ema = ModelEMA(model, config.ema_decay, config.ema_tau) if config.ema else None
    return _Run(config, device, splits, class_names, model, optimizer, scheduler, scaler, ema, loaders,
                sampler, train_dataset, total, RunState())


def _optimisation(config: DetectTrainConfig, model: nn.Module,
                  total: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """The optimiser over the trainable parameters and its per-iteration LR schedule."""
    groups = param_groups(model, config.weight_decay, decay_all=config.decay_norm_and_bias)
    optimizer = build_optimizer(groups, config.optimizer, config.lr, config.momentum, beta2=config.beta2)
    return optimizer, build_scheduler(optimizer, _schedule(config, total))


def _schedule(config: DetectTrainConfig, total: int) -> LRSchedule:
    return LRSchedule(total, config.warmup_iters, config.warmup_factor, config.schedule,
                      milestone_iterations(config.milestones, total), config.gamma, config.min_lr_ratio)


def _set_schedule_length(run: _Run, total: int) -> None:
    """Make the LR schedule (and the run) span ``total`` iterations from now on."""
    run.total_iters = total
    run.scheduler.lr_lambdas = [_schedule(run.config, total) for _ in run.scheduler.lr_lambdas]


def _fit_schedule(run: _Run, session_iters: int, session_minutes: float) -> None:
    """``fit_schedule_to_budget``: shorten the schedule so that it ends when the time budget does,
    at the speed measured since the run started or resumed (``session_minutes`` for
    ``session_iters`` iterations), with 1%
    to spare; never longer than the configured length. A schedule fitted to end now ends the run
    ("finished", at the schedule's last learning rate)."""
    if session_iters < 1 or session_minutes <= 0:
        return
    left = run.config.time_budget_min - run.state.train_minutes
    fitted = run.state.iteration + int(0.99 * left * session_iters / session_minutes)
    total = min(run.configured_iters, max(run.state.iteration, fitted))
    if total != run.total_iters:
        if run.total_iters == run.configured_iters:
            log(f"LR schedule fitted to the {run.config.time_budget_min:g}-minute budget: {total} iterations "
                f"at {60 * session_minutes / session_iters:.2f} s an iteration (refitted as training goes)")
        _set_schedule_length(run, total)


# ----------------------------------------------------------------------------- checkpoints


def _checkpoint_metrics(run: _Run) -> dict[str, Any]:
    last = run.state.history[-1] if run.state.history else {}
    return {k: v for k, v in last.items() if k.startswith(("val_", "test_", "epoch", "iteration"))}


def _model_extra(run: _Run) -> dict[str, Any]:
    """What rebuilds the model besides its config: the spec of a rescoring classifier."""
    rescorer = getattr(run.model, "rescorer", None)
    return {"rescorer": rescorer.spec.to_dict()} if rescorer is not None else {}


def _save_last(run: _Run, path: Path, rng: dict[str, Any]) -> Path:
    extra = {
        "state": run.state.to_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(),
        "ema": run.ema.state_dict() if run.ema is not None else None,
        "train_model": run.model.state_dict() if run.ema is not None else None,
        "rng": rng,
        **_model_extra(run),
    }
    return save_checkpoint(path, run.eval_model.state_dict(), config=config_to_dict(run.config),
                           class_names=run.class_names, metrics=_checkpoint_metrics(run), extra=extra)


def _save_best(run: _Run, path: Path) -> Path:
    extra = {"epoch": run.state.epoch + (1 if run.state.batch_in_epoch else 0), "iteration": run.state.iteration,
             **_model_extra(run)}
    return save_checkpoint(path, run.eval_model.state_dict(), config=config_to_dict(run.config),
                           class_names=run.class_names, metrics=_checkpoint_metrics(run), extra=extra)


def _restore(run: _Run, path: Path) -> None:
    """Load a ``last.pt`` into a freshly built run."""
    ckpt = load_checkpoint(path)
    extra = ckpt.extra
    if "state" not in extra or "optimizer" not in extra:
        raise ValueError(f"{path}: not a resumable checkpoint (no training state); resume from a run's last.pt")
    if list(ckpt.class_names) != run.class_names:
        raise ValueError(f"{path}: trained on classes {ckpt.class_names[:10]}, but the dataset has "
                         f"{run.class_names[:10]}")
    if (extra["ema"] is None) != (run.ema is None):
        raise ValueError(f"{path}: the checkpoint was trained with ema={extra['ema'] is not None}; "
                         f"resume with the same ema setting")
    run.model.load_state_dict(extra["train_model"] if extra["train_model"] is not None else ckpt.model)
    if run.ema is not None:
        run.ema.load_state_dict(extra["ema"])
    run.optimizer.load_state_dict(extra["optimizer"])
    _load_scheduler(run, extra["scheduler"])
    if extra["scaler"] and run.scaler.is_enabled():
        run.scaler.load_state_dict(extra["scaler"])
    run.state = RunState.from_dict(extra["state"])
    restore_rng(extra["rng"])


def _load_scheduler(run: _Run, state: dict[str, Any]) -> None:
    """Restore the scheduler's counters; the schedule itself is the current config's."""
    saved = [fn for fn in state.get("lr_lambdas", []) if fn]
    state = {**state, "lr_lambdas": [None] * len(run.scheduler.lr_lambdas)}
    run.scheduler.load_state_dict(state)
    before = saved[0].get("total_iters") if saved else None
    if run.config.fit_schedule_to_budget and before is not None and before < run.total_iters:
        _set_schedule_length(run, before)  # the length fitted so far; refitted at the resumed run's speed
    elif before is not None and before != run.total_iters:
        log(f"the LR schedule now spans {run.total_iters} iterations (the checkpoint's spanned {before})")


# ----------------------------------------------------------------------------- the loop


def _time_check(run: _Run, session_start: float) -> Callable[[], bool]:
    budget = run.config.time_budget_min
    base = run.state.train_minutes
    return lambda: budget is not None and base + (time.perf_counter() - session_start) / 60 >= budget


def _stop_reason(run: _Run, stop_after: int | None, over_budget: bool) -> str | None:
    if run.state.iteration >= run.total_iters:
        return STOP_FINISHED
    if stop_after is not None and run.state.iteration >= stop_after:
        return STOP_REQUESTED
    return STOP_TIME_BUDGET if over_budget else None


def _train_epoch(run: _Run, stop_after: int | None) -> dict[str, float]:
    """Train the epoch in progress until it ends, the run ends, or a stop; updates ``run.state``."""
    state, config = run.state, run.config
    run.sampler.set_epoch(state.epoch, state.batch_in_epoch)
    run.train_dataset.set_epoch(state.epoch)
    _close_mosaic(run)
    limit = min(run.sampler.num_batches() - state.batch_in_epoch, run.total_iters - state.iteration)
    if stop_after is not None:
        limit = min(limit, stop_after - state.iteration)
    if config.eval_every_iters:
        limit = min(limit, config.eval_every_iters - state.iteration % config.eval_every_iters)
    start = time.perf_counter()
    stats = train_one_epoch(run.model, run.optimizer, run.loaders["train"], run.scheduler, run.scaler, run.ema,
                            run.device, state.epoch, grad_clip=config.grad_clip, amp=run.train_dtype, max_iters=limit,
                            should_stop=_time_check(run, start), meter=state.meter,
                            after_step=_loss_logger(run, start), progress=config.progress)
    synchronize(run.device)
    state.train_minutes += (time.perf_counter() - start) / 60
    state.iteration += stats["iterations"]
    state.batch_in_epoch += stats["iterations"]
    return stats


def _close_mosaic(run: _Run) -> None:
    """Tell the training data from which epoch on it makes no mosaic (``close_mosaic``), from the run's
    length now (a fitted schedule shortens it), so a resumed run decides as the uninterrupted one."""
    if run.config.mosaic == 0:
        return
    dataset, state = run.train_dataset, run.state
    before = dataset.close_epoch
    close = close_mosaic_epoch(run.config, run.total_iters, run.sampler.num_batches())
    dataset.close_mosaic_at(close)
    switched = before != close or (state.epoch == close and state.batch_in_epoch == 0)
    if switched and not dataset.mosaic_active:
        log(f"no mosaic from epoch {max(close, 0) + 1} on (close_mosaic: the last {run.config.close_mosaic} "
            f"of the run's {close + run.config.close_mosaic} epochs)")


def _loss_logger(run: _Run, start: float) -> Callable[[dict[str, float]], None]:
    """Log each step's losses into ``run.state``'s loss log (about :data:`LOSS_LOG_POINTS` rows a run)."""
    every = max(1, run.configured_iters // LOSS_LOG_POINTS)
    base_iteration, base_minutes, steps = run.state.iteration, run.state.train_minutes, 0

    def after_step(losses: dict[str, float]) -> None:
        nonlocal steps
        steps += 1
        minutes = base_minutes + (time.perf_counter() - start) / 60
        run.state.log_losses(losses, base_iteration + steps, every, minutes)

    return after_step


def _due(period: int, epoch_done: bool, epoch: int) -> bool:
    return epoch_done and period > 0 and (epoch + 1) % period == 0


def _at_mark(run: _Run) -> bool:
    """Whether the run stands on a multiple of ``eval_every_iters``."""
    every = run.config.eval_every_iters
    return bool(every) and run.state.iteration % every == 0


def _epoch_row(run: _Run, stats: dict[str, float], epoch_done: bool, wall_minutes: float) -> dict[str, Any]:
    state = run.state
    losses = {k: v for k, v in stats.items() if k.startswith("loss")}
    return {"epoch": state.epoch + 1, "iteration": state.iteration,
            "epochs": state.iteration / run.sampler.num_batches(), "partial": not epoch_done,
            "minutes": state.train_minutes, "wall_minutes": wall_minutes, "lr": stats["lr"], **losses}


def _evaluate(run: _Run, role: str) -> dict[str, Any]:
    evaluation = evaluate_detector(run.eval_model, run.loaders[role], run.class_names, device=run.device,
                                   amp=run.eval_dtype, progress=run.config.progress,
                                   score_threshold=run.config.score_threshold)
    return evaluation.metrics()


def _log_row(run: _Run, row: dict[str, Any], improved: bool) -> None:
    metric = run.config.best_metric
    text = f"epoch {row['epoch']}{' (partial)' if row['partial'] else ''}  it {row['iteration']}/{run.total_iters}" \
           f"  loss {row.get('loss', float('nan')):.4f}  lr {row['lr']:.2e}"
    for prefix in ("val_", "test_"):
        if prefix + "AP" in row:
            text += f"  {prefix[:-1]} AP {row[prefix + 'AP']:.4f} AP50 {row[prefix + 'AP50']:.4f}"
    text += f"  {row['minutes']:.2f} min"
    if improved:
        text += f"  (best val {metric})"
    log(text)


def _end_of_epoch(run: _Run, stats: dict[str, float], reason: str | None, run_dir: Path, wall: Callable[[], float]) -> None:
    """Record, validate, checkpoint and plot after an epoch or a stop."""
    config, state = run.config, run.state
    rng = capture_rng(run.device.type == "cuda")  # before evaluation (which leaves the RNG alone anyway)
    epoch_done = state.batch_in_epoch == run.sampler.num_batches()
    row = _epoch_row(run, stats, epoch_done, wall())
    mark = _at_mark(run)
    if "val" in run.loaders and (reason is not None or mark or _due(config.eval_period, epoch_done, state.epoch)):
        row.update(metric_row("val_", _evaluate(run, "val")))
    if "test" in run.loaders and ((mark and config.test_period > 0)
                                  or _due(config.test_period, epoch_done, state.epoch)):
        row.update(metric_row("test_", _evaluate(run, "test")))
    state.history.append(row)
    value = row.get(f"val_{config.best_metric}")
    improved = value is not None and (state.best_value is None or value > state.best_value)
    if improved:
        state.best_value, state.best_epoch = value, row["epoch"]
    if epoch_done:
        state.next_epoch()
    state.wall_minutes = wall()
    _save_last(run, run_dir / "last.pt", rng)
    if improved or (reason is not None and "val" not in run.loaders):
        _save_best(run, run_dir / "best.pt")
    _log_row(run, row, improved)
    _write_history(run, run_dir)


def _write_history(run: _Run, run_dir: Path, summary: dict[str, Any] | None = None) -> None:
    state = run.state
    summary = {"best_metric": f"val_{run.config.best_metric}", "best_value": state.best_value,
               "best_epoch": state.best_epoch, "total_iterations": run.total_iters,
               "batches_per_epoch": run.sampler.num_batches(), **(summary or {}), "losses": state.loss_log}
    write_history(run_dir / "history.json", state.history, summary)
    plot_curves(state.history, run_dir / "curves.png", curve_panels(state), CURVE_AXES,
                title=f"{run.config.detector} on {run.config.data}", series={"losses": state.loss_log or state.history})


def fit(config: DetectTrainConfig, resume: str | Path | None = None, stop_after: int | None = None) -> TrainResult:
    """Train, validate, checkpoint and report one run (see the module docstring).

    Args:
        config: the run's settings.
        resume: a ``last.pt`` to continue from (the run folder is still ``config.output``).
        stop_after: stop once this many iterations of the whole run are done, as an interruption
            would (the schedule still spans the full run); the run validates, saves and reports
            as after a time-budget stop and can be resumed.

    Raises:
        ValueError: bad data (every bad box listed), a detector that cannot be built, a
            checkpoint that does not fit, or nothing left to train.
        FileExistsError: ``config.output`` already holds a run and neither ``resume`` nor ``exist_ok``.
        FloatingPointError: the loss became non-finite.
    """
    from detect.engine.ultralytics_train import fit_ultralytics, trains_with_ultralytics

    if trains_with_ultralytics(config.detector):  # ultralytics' models train with ultralytics' own trainer
        return fit_ultralytics(config, resume, stop_after)
    session_start = time.perf_counter()
    run_dir = check_run_dir(config, resume is not None)
    run = _build(config)
    if resume is not None:
        _restore(run, Path(resume))
        log(f"resuming {resume} at epoch {run.state.epoch + 1}, iteration {run.state.iteration}/{run.total_iters}")
    if run.state.iteration >= run.total_iters:
        raise ValueError(f"nothing to train: the run is at iteration {run.state.iteration} of {run.total_iters}; "
                         "raise epochs or max_iters to train longer")
    if stop_after is not None and stop_after <= run.state.iteration:
        raise ValueError(f"stop_after: expected an iteration after {run.state.iteration}, got {stop_after}")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    wall_base = run.state.wall_minutes
    wall = lambda: wall_base + (time.perf_counter() - session_start) / 60  # noqa: E731
    log(f"training {config.detector} on {config.data} ({len(run.splits['train'])} images, "
        f"{len(run.class_names)} classes) for {run.total_iters} iterations on {run.device}; run folder {run_dir}")
    reason = None
    start_iteration, start_minutes = run.state.iteration, run.state.train_minutes
    while reason is None:
        stats = _train_epoch(run, stop_after)
        if config.fit_schedule_to_budget:
            _fit_schedule(run, run.state.iteration - start_iteration, run.state.train_minutes - start_minutes)
        over = config.time_budget_min is not None and run.state.train_minutes >= config.time_budget_min
        reason = _stop_reason(run, stop_after, over)
        if reason is not None or run.state.batch_in_epoch == run.sampler.num_batches() or _at_mark(run):
            _end_of_epoch(run, stats, reason, run_dir, wall)
    if reason == STOP_TIME_BUDGET:
        log(f"time budget of {config.time_budget_min:g} min reached at iteration {run.state.iteration}")
    test = final_report(run_dir / "best.pt", run.splits.get("test"), run_dir, config) if "test" in run.splits else None
    _write_history(run, run_dir, {"stop_reason": reason, "test": test})
    return TrainResult(run_dir, run_dir / "last.pt", run_dir / "best.pt", f"val_{config.best_metric}",
                       run.state.best_value, run.state.history, test, reason, run.state.iteration,
                       run.state.train_minutes)

