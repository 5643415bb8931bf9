"""One training epoch and one evaluation pass, as functions over the Detector contract.

Any model with ``model(images, targets)`` -> ``dict`` of ``loss_*`` in train mode and one
``{"boxes", "scores", "labels"}`` per image in eval mode (DESIGN.md section 2) trains and is
scored here: torchvision's ``references/detection/engine.py`` shape, detectron2's timing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from detect.data.collate import detection_collate
from detect.evaluation.timing import synchronize
from detect.engine.optim import ModelEMA

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


def _autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    """Autocast to ``dtype`` on ``device`` (``None``: float32, no autocast)."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


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
    with _autocast(device, amp):
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
    progress: bool = True,
) -> dict[str, float]:
    """Train ``model`` over ``loader`` (batches of ``(images, targets)``) once.

    The scheduler is stepped and the EMA updated after every optimiser step. Stops early after
    ``max_iters`` iterations, or after the first iteration at which ``should_stop()`` is true.
    ``meter`` (default: a new one) accumulates the losses; pass the meter of a resumed epoch.

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
        done += 1
        bar.set_postfix(loss=f"{losses['loss']:.3f}", lr=f"{lr:.2e}", refresh=False)
        if should_stop is not None and should_stop():
            break
    bar.close()
    return {**meter.means(), "lr": lr, "iterations": done}


@torch.inference_mode()
def predict_batches(model: nn.Module, loader: Iterable[Batch], device: torch.device | str,
                    amp: torch.dtype | None = None,
                    progress: bool = True) -> tuple[list[dict[str, Any]], list[dict[str, Tensor]], dict[str, float]]:
    """Targets, CPU detections and timing of every image of ``loader`` (model in eval mode).

    Timing (detectron2 style): seconds of model calls per image, the first batch skipped as
    warm-up when there are more, the device synchronised around each call.
    """
    device = torch.device(device)
    model.eval()
    targets: list[dict[str, Any]] = []
    outputs: list[dict[str, Tensor]] = []
    seconds, timed = 0.0, 0
    for i, (images, batch_targets) in enumerate(tqdm(loader, desc="eval", unit="batch", disable=not progress,
                                                     leave=False)):
        images = [im.to(device, non_blocking=True) for im in images]
        synchronize(device)
        start = time.perf_counter()
        with _autocast(device, amp):
            batch_out = model(images)
        synchronize(device)
        if i > 0 or len(loader) == 1:  # type: ignore[arg-type]
            seconds += time.perf_counter() - start
            timed += len(images)
        outputs += [{k: v.detach().float().cpu() if v.is_floating_point() else v.cpu() for k, v in o.items()}
                    for o in batch_out]
        targets += list(batch_targets)
    return targets, outputs, {"seconds_per_image": seconds / max(timed, 1), "images": float(len(targets))}


def evaluate(model: nn.Module, data: DataLoader | Dataset, class_names: Sequence[str],
             device: torch.device | str = "cpu", *, batch_size: int = 8, num_workers: int = 0,
             amp: torch.dtype | None = None, progress: bool = True) -> dict[str, Any]:
    """COCO box metrics of ``model`` on a loader or a dataset (images in original pixels).

    The process-wide RNG state is restored afterwards, so evaluating never changes a training
    run's random stream.

    Returns pycocotools' numbers (``AP``, ``AP50``, ``AP75``, ``APs``, ``APm``, ``APl``,
    ``AR1``, ``AR10``, ``AR100``, ``ARs``, ``ARm``, ``ARl``; ``-1`` where undefined),
    ``per_class_AP``/``per_class_AP50`` (class name -> AP), ``seconds_per_image`` and ``images``.
    """
    from detect.evaluation.coco import COCOEvaluator

    device = torch.device(device)
    loader = data if isinstance(data, DataLoader) else DataLoader(
        data, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=detection_collate)
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    was_training = model.training
    with torch.random.fork_rng(devices=cuda):
        targets, outputs, timing = predict_batches(model, loader, device, amp, progress)
    model.train(was_training)
    evaluator = COCOEvaluator(class_names)
    evaluator.process(targets, outputs)
    return {**evaluator.evaluate(), **timing}
