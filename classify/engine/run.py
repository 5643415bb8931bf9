"""One classifier training run: its parts built from a :class:`TrainConfig`, its checkpoints.

:func:`build_run` loads the data, resolves the config (:func:`resolve_config`), builds the model,
the per-batch transforms, the loaders, the optimiser and the per-iteration schedule;
:func:`save_run` writes ``last.pt`` / ``best.pt`` (weights, resolved config, class names,
metrics, and for ``last.pt`` the optimiser, scheduler, scaler and RNG state and the history)
and :func:`restore_run` puts a run back in the state ``last.pt`` recorded.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from classify.base.checkpoint import Checkpoint, save_checkpoint
from classify.base.config import config_to_dict, load_config
from classify.base.device import amp_dtype, autocast, resolve_device, slow_bf16_note, synchronize
from classify.base.optim import build_optimizer, param_groups
from classify.base.schedule import LRSchedule, build_scheduler
from classify.data.augment import Augment, BatchTransform
from classify.data.datasets import DataSplits, default_hflip, load_data, make_loader
from classify.engine.config import TrainConfig
from classify.engine.metrics import EvalResult
from classify.engine.tuning import freeze_backbone, head_modules, head_parameters, set_bn_momentum, set_drop_rate
from classify.models.features import Backbone
from classify.models.registry import get_model, get_model_entry, resolve_weights
from classify.models.weights import load_weights

__all__ = [
    "DeviceSetup", "RESUMABLE_CHANGES", "Run", "build_model", "build_run", "build_transforms",
    "check_resume", "config_from_checkpoint", "new_run_dir", "resolve_config", "restore_run", "save_run",
]

#: config keys that may differ between a run and its resumption
RESUMABLE_CHANGES = frozenset({"epochs", "device", "workers", "threads", "eval_batch_size",
                               "progress", "output", "name"})
Log = Callable[[str], None]


# ----------------------------------------------------------------------------- devices, precision


@dataclass
class DeviceSetup:
    """Where and how the model runs: device, autocast dtype, memory format, scaler.

    ``channels_last`` applies on every device: oneDNN's CPU kernels train MobileNet v2 and
    EfficientNet-Lite0 about 2x faster in it, ResNet-18 about 1.5x (``tools/bench_memory_format.py``).
    ``amp="bf16"`` autocasts on the CPU too: oneDNN runs bfloat16 convolutions on AMX / AVX-512 BF16
    where the CPU has them (ResNet-18 at 48 px trains about 1.6x faster on this project's machines);
    float16 is CUDA-only."""

    device: torch.device
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False
    scaler: torch.amp.GradScaler | None = None

    @classmethod
    def from_config(cls, config: TrainConfig, log: Log = print) -> DeviceSetup:
        device = resolve_device(config.device)
        cuda = device.type == "cuda"
        if not cuda and config.amp == "fp16":
            log(f"note: amp=fp16 applies on CUDA only; running in float32 on {device} (amp=bf16 runs there)")
        note = slow_bf16_note(config.amp, device)
        if note:
            log(note)
        amp = amp_dtype(config.amp, device)
        scaler = torch.amp.GradScaler("cuda") if amp is torch.float16 else None
        return cls(device, amp, config.channels_last, scaler)

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.device, self.amp_dtype)

    def inputs(self, images: Tensor, transform: BatchTransform,
               generator: torch.Generator | None = None) -> Tensor:
        """uint8 batch -> model input on the device (channels-last if asked)."""
        x = transform(images.to(self.device, non_blocking=True), generator)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def synchronize(self) -> None:
        synchronize(self.device)


# ----------------------------------------------------------------------------- building a run


def resolve_config(config: TrainConfig, data: DataSplits) -> TrainConfig:
    """``config`` with ``image_size``, ``in_chans``, ``num_classes`` and ``hflip`` filled in."""
    entry = get_model_entry(config.model)
    classes = len(data.class_names)
    if config.num_classes is not None and config.num_classes != classes:
        raise ValueError(f"num_classes={config.num_classes} but {config.data} has {classes} "
                         f"classes ({', '.join(data.class_names)})")
    size = config.image_size or entry.input_size
    if size < entry.min_input_size:
        raise ValueError(f"image_size={size} is below the smallest input of {config.model} "
                         f"({entry.min_input_size} px)")
    in_chans = config.in_chans or (entry.in_chans if config.weights else data.channels)
    hflip = default_hflip(config.data) if config.hflip is None else config.hflip
    return dataclasses.replace(config, image_size=size, in_chans=in_chans, num_classes=classes,
                               hflip=hflip)


def build_model(config: TrainConfig, pretrained: bool = True) -> Backbone:
    """The registry model of a resolved ``config`` (``weights`` loaded only if ``pretrained``),
    with ``drop_rate`` and ``bn_momentum`` set and, with ``freeze_backbone``, only the
    classifier trainable.

    A classifier that the weights could not fill (another class count) starts from
    ``N(0, 0.01)`` weights and zero biases, so that a new head on pretrained features starts
    with logits near 0 rather than the model's ImageNet-scale initialisation.
    """
    assert config.num_classes is not None and config.in_chans is not None, "resolve_config first"
    model = get_model(config.model, num_classes=config.num_classes, in_chans=config.in_chans)
    if pretrained and config.weights is not None:
        report = load_weights(model, resolve_weights(get_model_entry(config.model), config.weights))
        if report.skipped_keys:
            _small_init(head_modules(model))
    if config.drop_rate is not None:
        set_drop_rate(model, config.drop_rate)
    if config.bn_momentum is not None:
        set_bn_momentum(model, config.bn_momentum)
    if config.freeze_backbone:
        freeze_backbone(model)
    return model


def _small_init(layers: list[nn.Module]) -> None:
    for layer in layers:
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)


def build_transforms(config: TrainConfig) -> tuple[BatchTransform, BatchTransform]:
    """(training, evaluation) batch transforms of a resolved ``config``."""
    entry = get_model_entry(config.model)
    assert config.image_size is not None and config.in_chans is not None, "resolve_config first"
    augment = Augment(config.crop_padding, config.hflip or 0.0, config.brightness, config.contrast,
                      config.erasing)
    common = (config.image_size, config.in_chans, entry.mean, entry.std, config.fit_mode)
    return BatchTransform(*common, augment=augment), BatchTransform(*common)


def _lr_schedule(config: TrainConfig, iters_per_epoch: int) -> LRSchedule:
    total = config.epochs * iters_per_epoch
    step = max(round(config.lr_step_size * iters_per_epoch), 1)
    return LRSchedule(total, warmup_iters=round(config.warmup_epochs * iters_per_epoch),
                      warmup_factor=config.warmup_factor, kind=config.schedule,
                      milestones=tuple(range(step, total + 1, step)) if config.schedule == "step" else (),
                      gamma=config.lr_gamma, min_ratio=config.min_lr_ratio, warmup_prefix=True)


@dataclass
class Run:
    """Everything a training run holds between epochs."""

    config: TrainConfig
    data: DataSplits
    model: Backbone
    setup: DeviceSetup
    train_tf: BatchTransform
    eval_tf: BatchTransform
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    loaders: dict[str, DataLoader]
    shuffle: torch.Generator
    augment: torch.Generator
    run_dir: Path
    epoch: int = 0  # epochs completed
    best_top1: float = -1.0
    best_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def build_run(config: TrainConfig, run_dir: Path, log: Log, pretrained: bool) -> Run:
    """Load the data and build every part of a run at epoch 0 (``pretrained``: load
    ``config.weights``; off when resuming, as the checkpoint holds the weights)."""
    size = config.image_size or get_model_entry(config.model).input_size  # mixed-size folders
    data = load_data(config.data, size=size, val_fraction=config.val_fraction,
                     subset=config.subset, test_subset=config.test_subset, seed=config.seed)
    config = resolve_config(config, data)
    setup = DeviceSetup.from_config(config, log)
    model = build_model(config, pretrained).to(setup.device)
    if setup.channels_last:
        model = model.to(memory_format=torch.channels_last)
    train_tf, eval_tf = build_transforms(config)
    shuffle = torch.Generator()
    n = len(data.train)
    loaders = {"train": make_loader(data.train, config.batch_size, shuffle=True, generator=shuffle,
                                    workers=config.workers, drop_last=n % config.batch_size == 1),
               "val": make_loader(data.val, config.eval_batch_size, shuffle=False, workers=config.workers)}
    if data.test is not data.val:
        loaders["test"] = make_loader(data.test, config.eval_batch_size, shuffle=False,
                                      workers=config.workers)
    groups = param_groups(model, config.weight_decay, head=head_parameters(model),
                          backbone_lr_scale=config.backbone_lr_scale)
    optimizer = build_optimizer(groups, config.optimizer, config.lr, config.momentum, nesterov=config.nesterov)
    scheduler = build_scheduler(optimizer, _lr_schedule(config, len(loaders["train"])))
    augment_gen = torch.Generator(device=setup.device)
    return Run(config, data, model, setup, train_tf, eval_tf, optimizer, scheduler, loaders,
               shuffle, augment_gen, run_dir)


def new_run_dir(config: TrainConfig) -> Path:
    """``output/name`` (default ``<model>_<data>``), with ``-2``, ``-3``... if it holds a run."""
    stem = config.name or f"{config.model}_{Path(config.data).name or 'data'}"
    output = Path(config.output)
    path, k = output / stem, 1
    while (path / "last.pt").exists() or (path / "best.pt").exists():
        k += 1
        path = output / f"{stem}-{k}"
    return path


# ----------------------------------------------------------------------------- checkpoints


def _metrics(run: Run, val: EvalResult) -> dict[str, Any]:
    return {"epoch": run.epoch, "val_top1": val.top1, "val_top5": val.top5, "val_loss": val.loss,
            "best_top1": run.best_top1, "best_epoch": run.best_epoch, "val_split": run.data.val_name}


def save_run(run: Run, path: Path, val: EvalResult, resumable: bool) -> None:
    """Write a checkpoint of ``run`` after its latest epoch (validation result ``val``);
    ``resumable`` adds optimiser, scheduler, scaler and RNG state and the history."""
    extra: dict[str, Any] = {"epoch": run.epoch}
    if resumable:
        extra.update(optimizer=run.optimizer.state_dict(), scheduler=run.scheduler.state_dict(),
                     history=run.history, best_top1=run.best_top1, best_epoch=run.best_epoch,
                     rng_cpu=torch.get_rng_state())
        if run.setup.scaler is not None:
            extra["scaler"] = run.setup.scaler.state_dict()
        if run.setup.device.type == "cuda":
            extra["rng_cuda"] = torch.cuda.get_rng_state(run.setup.device)
    save_checkpoint(path, run.model.state_dict(), config=config_to_dict(run.config),
                    class_names=list(run.data.class_names), metrics=_metrics(run, val), extra=extra)


def config_from_checkpoint(ckpt: Checkpoint, where: str = "checkpoint") -> TrainConfig:
    """The :class:`TrainConfig` stored in a ``classify train`` checkpoint."""
    if "model" not in ckpt.config or "epochs" not in ckpt.config:
        raise ValueError(f"{where}: not a checkpoint of 'classify train' (its config has no "
                         f"'model'/'epochs' keys)")
    return load_config(TrainConfig, None, overrides=ckpt.config)


def check_resume(stored: TrainConfig, config: TrainConfig, path: Path) -> None:
    """``ValueError`` naming the keys, outside :data:`RESUMABLE_CHANGES`, that differ between
    the checkpoint's config and ``config`` (fields left ``None`` in ``config`` are not compared)."""
    before, now = config_to_dict(stored), config_to_dict(config)
    changed = [k for k in now if k not in RESUMABLE_CHANGES and now[k] != before[k]
               and not (before[k] is not None and now[k] is None)]  # None: resolved in the file
    if changed:
        detail = ", ".join(f"{k}: {before[k]!r} -> {now[k]!r}" for k in changed)
        raise ValueError(f"{path}: cannot resume with a changed {detail}; only "
                         f"{', '.join(sorted(RESUMABLE_CHANGES))} may change")


def restore_run(run: Run, ckpt: Checkpoint, path: Path) -> None:
    """Put a freshly built ``run`` in the state recorded by ``last.pt`` (``ckpt``)."""
    extra = ckpt.extra
    if "optimizer" not in extra:
        raise ValueError(f"{path}: holds no optimiser state; resume from a run's last.pt")
    run.model.load_state_dict(ckpt.model)
    run.optimizer.load_state_dict(extra["optimizer"])
    # the schedule's shape and base lrs follow the current config (epochs may have grown);
    # the checkpoint gives the iteration count
    base_lrs, lambdas = run.scheduler.base_lrs, [None] * len(run.scheduler.lr_lambdas)
    run.scheduler.load_state_dict({**extra["scheduler"], "lr_lambdas": lambdas})  # counters only
    run.scheduler.base_lrs = base_lrs
    if run.setup.scaler is not None and "scaler" in extra:
        run.setup.scaler.load_state_dict(extra["scaler"])
    run.epoch, run.history = int(extra["epoch"]), list(extra["history"])
    run.best_top1, run.best_epoch = float(extra["best_top1"]), int(extra["best_epoch"])
    torch.set_rng_state(extra["rng_cpu"])
    if run.setup.device.type == "cuda" and "rng_cuda" in extra:
        torch.cuda.set_rng_state(extra["rng_cuda"], run.setup.device)
