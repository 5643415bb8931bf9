"""Classifier training and evaluation: ``train_one_epoch``, ``evaluate`` and ``fit``.

    from classify.base.config import load_config
    from classify.engine.trainer import fit
    from classify.engine.config import TrainConfig

    result = fit(load_config(TrainConfig, "configs/classify/classify_lenet5_fashion.yaml"))
    result.test.top1, result.run_dir          # e.g. 0.905, runs/classify/lenet5_fashion

Building a run's parts, its checkpoints and resumption live in :mod:`classify.engine.run`.

A run folder (``runs/classify/<name>``) receives ``config.yaml`` (the resolved config),
``last.pt`` (after every epoch: weights + optimiser, scheduler, scaler and RNG state, history),
``best.pt`` (see below), ``curves.png``, ``confusion_matrix.png`` (test split) and
``results.json``.  ``fit(config, resume="…/last.pt")`` continues a run exactly where it stopped:
on a CPU, 2 epochs straight and 1 epoch + resume + 1 epoch give identical weights, because the
data order and the augmentation draw from generators seeded by ``(seed, epoch)`` and the global
RNG (dropout) is saved and restored.

``best.pt`` is chosen on a validation split: the dataset's ``val`` split, or ``val_fraction`` of
train held out. Without one, the test split is scored every epoch but never chooses: ``best.pt``
is the last epoch. ``test`` in the result is ``best.pt`` on the test split, what ``classify eval
best.pt`` reports.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from classify.base.checkpoint import load_checkpoint, load_state_strict
from classify.base.config import config_to_dict, save_config
from classify.base.device import resolve_device
from classify.base.history import Panel, json_ready, plot_curves
from classify.base.rng import derived_seed
from classify.data.augment import BatchTransform
from classify.data.datasets import load_split, make_loader
from classify.engine.config import TrainConfig
from classify.engine.metrics import ClassificationMeter, EvalResult
from classify.engine.run import (
    DeviceSetup,
    Log,
    Run,
    build_model,
    build_run,
    build_transforms,
    check_resume,
    config_from_checkpoint,
    new_run_dir,
    restore_run,
    save_run,
)
from classify.engine.tuning import set_train_mode
from classify.models.outputs import classification_loss, main_logits

__all__ = ["EpochStats", "FitResult", "evaluate", "evaluate_checkpoint", "fit",
           "train_one_epoch"]

#: curves.png: loss and top-1 accuracy per epoch, training and validation
CURVES = (Panel("loss", "cross-entropy", ("train_loss", "val_loss"), {"train_loss": "train", "val_loss": "validation"}),
          Panel("accuracy", "top-1 accuracy (%)", ("train_top1", "val_top1"),
                {"train_top1": "train", "val_top1": "validation"}, scale=100))


# ----------------------------------------------------------------------------- one epoch


@dataclass(frozen=True)
class EpochStats:
    """One training epoch: mean loss per image, top-1 on the augmented batches, last lr,
    wall-clock seconds (data included), images seen."""

    loss: float
    top1: float
    lr: float
    seconds: float
    images: int


def _bar(loader: DataLoader, progress: bool, desc: str) -> Iterator:
    from tqdm.auto import tqdm

    return iter(tqdm(loader, desc=desc, leave=False, disable=not progress, dynamic_ncols=True))


def train_one_epoch(model: nn.Module, loader: DataLoader, transform: BatchTransform,
                    optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
                    setup: DeviceSetup, *, generator: torch.Generator | None = None,
                    label_smoothing: float = 0.0, grad_clip: float | None = None,
                    frozen_backbone: bool = False, progress: bool = False,
                    desc: str = "train") -> EpochStats:
    """One pass over ``loader`` (``uint8 [B, C, H, W]``, ``int64 [B]`` batches), one optimiser and
    scheduler step per batch; auxiliary heads are weighted in (:func:`classification_loss`).

    Raises ``FloatingPointError`` when the loss stops being finite.
    """
    set_train_mode(model, frozen_backbone)
    criterion = partial(F.cross_entropy, label_smoothing=label_smoothing)
    loss_sum, correct, seen, start = 0.0, 0, 0, time.perf_counter()
    for step, (images, target) in enumerate(_bar(loader, progress, desc)):
        x, target = setup.inputs(images, transform, generator), target.to(setup.device)
        with setup.autocast():
            output = model(x)
            loss = classification_loss(output, target, criterion)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: loss is {loss.item()} at batch {step}; lower the lr "
                                     f"or set grad_clip")
        _backward_step(loss, model, optimizer, setup.scaler, grad_clip)
        scheduler.step()
        loss_sum += loss.item() * len(target)
        correct += int((main_logits(output).argmax(1) == target).sum())
        seen += len(target)
    setup.synchronize()
    return EpochStats(loss_sum / max(seen, 1), correct / max(seen, 1),
                      optimizer.param_groups[0]["lr"], time.perf_counter() - start, seen)


def _backward_step(loss: Tensor, model: nn.Module, optimizer: torch.optim.Optimizer,
                   scaler: torch.amp.GradScaler | None, grad_clip: float | None) -> None:
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        return
    scaler.scale(loss).backward()
    if grad_clip is not None:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()


@torch.inference_mode()
def evaluate(model: nn.Module, loader: DataLoader, transform: BatchTransform, setup: DeviceSetup,
             num_classes: int, *, progress: bool = False, desc: str = "eval") -> EvalResult:
    """Top-1/top-5, mean cross-entropy, per-class accuracy and confusion matrix over ``loader``."""
    model.eval()
    meter = ClassificationMeter(num_classes)
    for images, target in _bar(loader, progress, desc):
        x, target = setup.inputs(images, transform), target.to(setup.device)
        with setup.autocast():
            logits = main_logits(model(x)).float()
        meter.update(logits, target, F.cross_entropy(logits, target, reduction="sum").item())
    return meter.result()


# ----------------------------------------------------------------------------- fit


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` returns: the run folder, validation and test scores of best.pt (the epoch
    with the best validation top-1; the last epoch without a validation split), that top-1 and its
    epoch, per-epoch history, mean training-epoch seconds."""

    run_dir: Path
    config: TrainConfig
    val: EvalResult
    test: EvalResult
    best_top1: float
    best_epoch: int
    history: list[dict[str, float]]
    epoch_seconds: float
    selected_on_validation: bool = True


def _log_epoch(log: Log, run: Run, stats: EpochStats, val: EvalResult) -> None:
    log(f"epoch {run.epoch}/{run.config.epochs}  train loss {stats.loss:.4f} top-1 "
        f"{100 * stats.top1:.2f}%  {run.data.val_name} loss {val.loss:.4f} top-1 "
        f"{100 * val.top1:.2f}% top-5 {100 * val.top5:.2f}%  lr {stats.lr:.3g}  "
        f"{stats.seconds:.1f}s")


def _epoch(run: Run, log: Log) -> EvalResult:
    """Train one epoch, validate, update the history and write last.pt (and best.pt)."""
    config, epoch = run.config, run.epoch
    run.shuffle.manual_seed(derived_seed(config.seed, epoch, 0))
    run.augment.manual_seed(derived_seed(config.seed, epoch, 1))
    stats = train_one_epoch(run.model, run.loaders["train"], run.train_tf, run.optimizer,
                            run.scheduler, run.setup, generator=run.augment,
                            label_smoothing=config.label_smoothing, grad_clip=config.grad_clip,
                            frozen_backbone=config.freeze_backbone, progress=config.progress,
                            desc=f"epoch {epoch + 1}/{config.epochs}")
    val = evaluate(run.model, run.loaders["val"], run.eval_tf, run.setup, config.num_classes,
                   progress=config.progress, desc=f"{run.data.val_name}")
    run.epoch += 1
    run.history.append({"epoch": run.epoch, "train_loss": stats.loss, "train_top1": stats.top1,
                        "val_loss": val.loss, "val_top1": val.top1, "val_top5": val.top5,
                        "lr": stats.lr, "seconds": stats.seconds})
    # without a validation split the test split is watched, never used to choose: best.pt is the last epoch
    improved = val.top1 > run.best_top1 or not run.data.selects_on_validation
    if improved:
        run.best_top1, run.best_epoch = val.top1, run.epoch
    save_run(run, run.run_dir / "last.pt", val, resumable=True)
    if improved:
        save_run(run, run.run_dir / "best.pt", val, resumable=False)
    _log_epoch(log, run, stats, val)
    return val


def fit(config: TrainConfig, resume: str | Path | None = None, *, log: Log = print,
        on_epoch_end: Callable[[int, EvalResult], None] | None = None) -> FitResult:
    """Train ``config.model`` on ``config.data`` for ``config.epochs`` epochs.

    Args:
        resume: a run's ``last.pt`` (or its folder): the run continues in that folder; ``config``
            must equal the stored one except for :data:`RESUMABLE_CHANGES`.
        log: receives one line per epoch and notes.
        on_epoch_end: called with ``(epoch, validation result)`` after each epoch's checkpoint.
    """
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return _fit(config, resume, log, on_epoch_end)
    finally:
        torch.set_num_threads(threads)


def _fit(config: TrainConfig, resume: str | Path | None, log: Log,
         on_epoch_end: Callable[[int, EvalResult], None] | None) -> FitResult:
    torch.manual_seed(config.seed)
    ckpt = path = None
    if resume is not None:
        path = Path(resume) / "last.pt" if Path(resume).is_dir() else Path(resume)
        ckpt = load_checkpoint(path)
        check_resume(config_from_checkpoint(ckpt, str(path)), config, path)
    run = build_run(config, path.parent if path else new_run_dir(config), log,
                    pretrained=ckpt is None)
    if ckpt is not None:
        restore_run(run, ckpt, path)
        log(f"resumed {path} after epoch {run.epoch}")
    if run.setup.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if not run.data.selects_on_validation:
        log(f"note: {config.data} has no validation split: the test split is scored every epoch but never "
            f"chooses best.pt (the last epoch's weights); --val-fraction 0.1 holds out 10% of train to choose on")
    run.run_dir.mkdir(parents=True, exist_ok=True)
    save_config(run.config, run.run_dir / "config.yaml")
    val = None
    while run.epoch < run.config.epochs:
        val = _epoch(run, log)
        if on_epoch_end is not None:
            on_epoch_end(run.epoch, val)
    return _finish(run, val)


def _finish(run: Run, val: EvalResult | None) -> FitResult:
    """Score the final model on the test split, write the plots and results.json."""
    from classify.engine.plots import plot_confusion

    config = run.config
    if run.best_epoch != run.epoch:  # the test split scores best.pt, the model a user keeps
        load_state_strict(run.model, load_checkpoint(run.run_dir / "best.pt").model, "best.pt")
        val = None
    if val is None:  # resumed a finished run, or best.pt is not the last epoch
        val = evaluate(run.model, run.loaders["val"], run.eval_tf, run.setup, config.num_classes)
    test = val if "test" not in run.loaders else evaluate(
        run.model, run.loaders["test"], run.eval_tf, run.setup, config.num_classes,
        progress=config.progress, desc="test")
    title = f"{config.model} on {config.data}"
    if run.history:
        plot_curves(run.history, run.run_dir / "curves.png", CURVES, title=title)
    plot_confusion(test.confusion, run.data.class_names, run.run_dir / "confusion_matrix.png",
                   f"{title}: test top-1 {100 * test.top1:.2f}%")
    seconds = [h["seconds"] for h in run.history]
    result = FitResult(run.run_dir, config, val, test, run.best_top1, run.best_epoch,
                       run.history, float(np.mean(seconds)) if seconds else math.nan,
                       run.data.selects_on_validation)
    _write_results(result)
    return result


def _write_results(result: FitResult) -> None:
    from classify.base.atomic import write_text_atomic

    payload = {"config": config_to_dict(result.config), "val": result.val.as_dict(),
               "test": result.test.as_dict(), "best_top1": result.best_top1,
               "best_epoch": result.best_epoch, "epoch_seconds": result.epoch_seconds,
               "selected_on_validation": result.selected_on_validation,
               "history": result.history}
    write_text_atomic(result.run_dir / "results.json", json.dumps(json_ready(payload), indent=2))


def evaluate_checkpoint(path: str | Path, data: str | None = None, split: str = "test", *,
                        per_class: int | None = None, batch_size: int = 256,
                        device: str = "auto", workers: int = 0,
                        progress: bool = False) -> tuple[EvalResult, TrainConfig, tuple[str, ...]]:
    """Score a ``classify train`` checkpoint on a dataset split.

    Args:
        data: dataset name or image folder (default: the one it was trained on); its classes
            must be the checkpoint's, in the same order.
        per_class: score on this many images a class (drawn with the run's seed).

    Returns:
        ``(result, the checkpoint's config, class names)``.
    """
    path = Path(path)
    ckpt = load_checkpoint(path)
    config = config_from_checkpoint(ckpt, str(path))
    dataset = load_split(data or config.data, split, size=config.image_size, per_class=per_class,
                         seed=config.seed)
    _check_classes(list(ckpt.class_names), list(dataset.class_names), path, data or config.data)
    setup = DeviceSetup(resolve_device(device))
    model = build_model(dataclasses.replace(config, drop_rate=None, freeze_backbone=False),
                        pretrained=False)
    model.load_state_dict(ckpt.model)
    loader = make_loader(dataset, batch_size, shuffle=False, workers=workers)
    result = evaluate(model.to(setup.device), loader, build_transforms(config)[1], setup,
                      len(dataset.class_names), progress=progress, desc=split)
    return result, config, dataset.class_names


def _check_classes(trained: list[str], found: list[str], path: Path, data: str) -> None:
    if trained and trained != found:
        raise ValueError(f"{data}: its {len(found)} classes {found[:12]} differ from the "
                         f"{len(trained)} classes {path} was trained on {trained[:12]}")
