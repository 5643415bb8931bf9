"""One training step and one training epoch, as functions over the Detector contract.

Any model with ``model(images, targets)`` -> ``dict`` of ``loss_*`` in train mode (and one
``{"boxes", "scores", "labels"}`` per image in eval mode, see docs/design.md) trains here:
torchvision's ``references/detection/engine.py`` shape. Evaluation is
:func:`detect.inference.evaluate.evaluate_detector`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from classify.base.device import autocast
from classify.base.ema import ModelEMA

Batch = tuple[Sequence[Tensor], Sequence[Mapping[str, Any]]]


class LossMeter:
    """Running sums of the losses of an epoch; :meth:`means` gives the per-iteration means.

    Its state is plain numbers (:meth:`state_dict`), so a run stopped mid-epoch resumes with
    the same sums.
    """

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, losses: Mapping[str, float]) -> None:
        for key, value in losses.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
        self.count += 1

    def means(self) -> dict[str, float]:
        return {k: v / self.count for k, v in self.sums.items()} if self.count else {}

    def state_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "count": self.count}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sums, self.count = dict(state["sums"]), int(state["count"])


def training_targets(targets: Sequence[Mapping[str, Any]], device: torch.device) -> list[dict[str, Tensor]]:
    """``{"boxes", "labels"}`` of each target on ``device``, COCO crowd regions removed."""
    out = []
    for t in targets:
        keep = ~t["iscrowd"] if "iscrowd" in t else slice(None)
        out.append({"boxes": t["boxes"][keep].to(device, non_blocking=True),
                    "labels": t["labels"][keep].to(device, non_blocking=True)})
    return out


def _check_losses(losses: Mapping[str, Tensor], epoch: int, iteration: int) -> Tensor:
    if not isinstance(losses, Mapping) or not losses:
        raise TypeError(f"the model returned {type(losses).__name__} in train mode; expected a dict of "
                        "loss_* tensors (Detector contract)")
    total = sum(losses.values())
    if not math.isfinite(float(total.detach())):
        values = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())
        raise FloatingPointError(f"non-finite loss at epoch {epoch + 1}, iteration {iteration + 1} of the epoch "
                                 f"({values}); lower lr, lengthen warmup_iters or set grad_clip")
    return total


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: list[Tensor],
               targets: list[dict[str, Tensor]], scaler: torch.amp.GradScaler | None = None,
               grad_clip: float | None = None, amp: torch.dtype | None = None,
               where: tuple[int, int] = (0, 0)) -> dict[str, float]:
    """One forward/backward/step on a batch, the forward autocast to ``amp`` (``None``: float32);
    returns the losses (and their sum ``loss``) as floats."""
    device = images[0].device
    with autocast(device, amp):
        losses = model(images, targets)
    total = _check_losses(losses, *where)
    optimizer.zero_grad(set_to_none=True)
    scaling = scaler is not None and scaler.is_enabled()
    (scaler.scale(total) if scaling else total).backward()
    if grad_clip is not None:
        if scaling:
            scaler.unscale_(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    if scaling:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return {"loss": float(total.detach()), **{k: float(v.detach()) for k, v in losses.items()}}


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Iterable[Batch],
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    scaler: torch.amp.GradScaler | None,
    ema: ModelEMA | None,
    device: torch.device | str,
    epoch: int,
    *,
    grad_clip: float | None = None,
    amp: torch.dtype | None = None,
    max_iters: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    meter: LossMeter | None = None,
    after_step: Callable[[dict[str, float]], None] | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Train ``model`` over ``loader`` (batches of ``(images, targets)``) once.

    The scheduler is stepped and the EMA updated after every optimiser step. Stops early after
    ``max_iters`` iterations, or after the first iteration at which ``should_stop()`` is true.
    ``meter`` (default: a new one) accumulates the losses; pass the meter of a resumed epoch.
    ``after_step`` is called with each step's losses (floats, their sum under ``loss``).

    Returns the mean of each ``loss_*`` and of their sum ``loss`` over the epoch's iterations,
    plus ``lr`` (the learning rate of the last step) and ``iterations`` (run by this call).

    Raises:
        FloatingPointError: a non-finite loss, naming the epoch, the iteration and the losses.
    """
    device = torch.device(device)
    meter = LossMeter() if meter is None else meter
    model.train()
    done, lr = 0, optimizer.param_groups[0]["lr"]
    total = len(loader) if max_iters is None else min(len(loader), max_iters)  # type: ignore[arg-type]
    bar = tqdm(loader, total=total, desc=f"epoch {epoch + 1}", unit="it", disable=not progress, leave=False)
    for images, targets in bar:
        if max_iters is not None and done >= max_iters:
            break
        images = [im.to(device, non_blocking=True) for im in images]
        lr = optimizer.param_groups[0]["lr"]
        losses = train_step(model, optimizer, images, training_targets(targets, device), scaler, grad_clip,
                            amp, (epoch, meter.count))
        if scheduler is not None:
            scheduler.step()
        if ema is not None:
            ema.update(model)
        meter.add(losses)
        if after_step is not None:
            after_step(losses)
        done += 1
        bar.set_postfix(loss=f"{losses['loss']:.3f}", lr=f"{lr:.2e}", refresh=False)
        if should_stop is not None and should_stop():
            break
    bar.close()
    return {**meter.means(), "lr": lr, "iterations": done}
