"""``DetectTrainConfig``: every setting of one detector training run, as a frozen dataclass.

Read from a YAML preset (``configs/detect/train_*.yaml``) and command-line flags by
:mod:`classify.base.config`; stored as a plain dict in every checkpoint, so a run can be rebuilt and
resumed from its ``last.pt`` alone. Units: sizes in pixels, durations in iterations (one
iteration = one optimiser step on one batch) unless the name says ``epochs`` or ``min``.

The detector is built as ``get_detector(detector, num_classes=<from the data>,
image_size=image_size, **detector_kwargs)``; builder options such as ``backbone``, ``fpn``,
``trainable_layers`` (frozen backbone stages) or ``backbone_weights`` (a classify checkpoint)
go in ``detector_kwargs``. ``freeze`` freezes any parameters by name prefix, for every detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from classify.base.config import check_fields, param

#: Keys of ``detector_kwargs`` that the config sets through its own fields.
RESERVED_DETECTOR_KWARGS = ("num_classes", "image_size")
#: COCO numbers that can choose the best checkpoint.
BEST_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


@dataclass(frozen=True)
class DetectTrainConfig:
    """One training run of a registry detector on a COCO/VOC/YOLO dataset."""

    # -- data
    data: Path = param(Path("data/digit-scenes/coco"), help="dataset: COCO json or folder, VOC folder, "
                       "YOLO data.yaml or folder")
    format: Literal["coco", "voc", "yolo"] | None = param(None, help="dataset format (default: detected)")
    train_split: str = param("train", help="split trained on")
    val_split: str | None = param("val", help="split validated on every eval_period epochs (null: none)")
    test_split: str | None = param("test", help="split of the final report, scored with best.pt (null: none)")
    # -- model
    detector: str = param("faster_rcnn", help="registry name (see 'detect list')")
    detector_kwargs: Any = param(default_factory=dict, help="extra keyword arguments of the detector builder: "
                                 "a YAML mapping; on the command line a flow mapping such as "
                                 "'{backbone: resnet18, trainable_layers: 3}'")
    image_size: int = param(320, ge=32, le=4096, help="input side in pixels, passed to the detector "
                            "and the letterbox")
    freeze: tuple[str, ...] = param((), help="parameter-name prefixes to freeze (requires_grad off; "
                                    "their norm layers keep their running statistics)")
    # -- length
    epochs: int = param(12, ge=1, help="passes over the training split")
    max_iters: int | None = param(None, ge=1, help="total iterations; replaces epochs when set")
    time_budget_min: float | None = param(None, gt=0, help="stop cleanly after this many minutes of "
                                          "training (validation excluded), then validate, save and report")
    fit_schedule_to_budget: bool = param(False, help="with time_budget_min: after every stretch of training "
                                         "(an epoch, or eval_every_iters), shorten the LR schedule so that it "
                                         "ends with the budget at the speed measured so far (never longer "
                                         "than epochs / max_iters)")
    batch_size: int = param(4, ge=1, help="images per iteration")
    # -- optimiser and schedule
    optimizer: Literal["sgd", "adamw"] = param("sgd", help="optimiser")
    lr: float = param(0.02, gt=0, help="peak learning rate (after warm-up)")
    momentum: float = param(0.9, ge=0, lt=1, help="SGD momentum (AdamW: beta1)")
    beta2: float = param(0.999, gt=0, lt=1, help="AdamW beta2")
    weight_decay: float = param(1e-4, ge=0, help="L2 / decoupled weight decay")
    decay_norm_and_bias: bool = param(False, help="also decay norm-layer weights and biases")
    warmup_iters: int = param(500, ge=0, help="linear warm-up length in iterations")
    warmup_factor: float = param(0.001, gt=0, le=1, help="LR factor at iteration 0 of the warm-up")
    schedule: Literal["step", "cosine", "constant"] = param("step", help="LR decay after warm-up")
    milestones: tuple[float, ...] = param((0.67, 0.89), gt=0, lt=1, help="step schedule: fractions of "
                                          "the total iterations where the LR is multiplied by gamma")
    gamma: float = param(0.1, gt=0, le=1, help="step schedule: LR factor at each milestone")
    min_lr_ratio: float = param(0.0, ge=0, le=1, help="cosine schedule: final LR as a fraction of lr")
    grad_clip: float | None = param(None, gt=0, help="clip the global gradient L2 norm to this value")
    amp: Literal["none", "bf16", "fp16"] = param("none", help="mixed precision of the training steps: "
                                                 "bf16 autocast on CUDA or the CPU (AMX / AVX-512 BF16), "
                                                 "fp16 autocast + GradScaler on CUDA only; evaluation "
                                                 "autocasts on CUDA only")
    channels_last: bool = param(False, help="the model's 4-D weights (so its convolutions) in channels-last "
                                "memory format: faster oneDNN kernels on the CPU")
    ema: bool = param(False, help="keep an exponential moving average of the weights; it is "
                      "validated and saved as the model")
    ema_decay: float = param(0.9998, gt=0, lt=1, help="EMA decay per iteration")
    ema_tau: float = param(2000.0, ge=0, help="EMA warm-up: decay * (1 - exp(-updates / tau)); 0: off")
    # -- data pipeline
    letterbox: bool = param(True, help="letterbox every image to image_size x image_size; false: "
                            "resize the shorter side and batch by aspect-ratio groups")
    aspect_ratio_group_factor: int = param(3, ge=0, help="without letterbox: 2k+1 aspect-ratio bins "
                                           "(0: two groups, portrait and landscape)")
    hflip: float = param(0.0, ge=0, le=1, help="horizontal flip probability (0 for digits and text)")
    scale_jitter: tuple[float, float] | None = param((0.8, 1.2), gt=0, help="random scale range "
                                                     "(null: off)")
    color_jitter: float = param(0.2, ge=0, le=1, help="brightness/contrast/saturation jitter strength")
    translate: bool = param(False, help="letterbox: place each training image at a random position of "
                            "the canvas (a random crop when scale jitter enlarges it) instead of centred")
    mosaic: float = param(0.0, ge=0, le=1, help="probability that a training sample is a mosaic of 4 "
                          "images (YOLOv4): each resized to image_size on its longer side, placed around a "
                          "random centre of a 2 x image_size canvas, a window of it cut back to image_size "
                          "with a random scale from scale_jitter (moved by up to a tenth of image_size with "
                          "translate); then hflip and colour jitter; needs letterbox (0: off)")
    close_mosaic: int = param(0, ge=0, help="train the last N epochs without mosaic (nor mixup). The run "
                              "counts ceil(total iterations / batches an epoch) epochs, the last possibly "
                              "partial and counted as one; total iterations are epochs x batches, or "
                              "max_iters, or the schedule fitted so far with fit_schedule_to_budget (a "
                              "time-budget stop without it may come before them); 0: mosaic to the end")
    mixup: float = param(0.0, ge=0, le=1, help="probability that a mosaic sample is blended with a second "
                         "mosaic (MixUp: weight r ~ Beta(32, 32) on the first, 1 - r on the second), keeping "
                         "the boxes of both; needs mosaic > 0 (0: off)")
    num_workers: int = param(0, ge=0, help="data-loading processes")
    # -- validation, checkpoints, run
    eval_period: int = param(1, ge=0, help="validate every N epochs (0: only at the end)")
    test_period: int = param(0, ge=0, help="also score the test split every N epochs, for "
                             "accuracy-vs-time curves (0: only the final report)")
    eval_every_iters: int | None = param(None, ge=1, help="also validate every N iterations, "
                                         "mid-epoch included (and score the test split there "
                                         "when test_period > 0): finer accuracy-vs-time curves")
    best_metric: str = param("AP", choices=BEST_METRICS, help="validation COCO number that picks best.pt")
    eval_batch_size: int = param(8, ge=1, help="images per batch when validating")
    score_threshold: float = param(0.25, ge=0, le=1, help="final report: score of P/R/F1 and the "
                                   "confusion matrix")
    report_examples: int = param(8, ge=0, help="final report: images drawn in examples.png")
    seed: int = param(0, ge=0, help="seeds weights, sampling and augmentation")
    output: Path = param(Path("runs/detect/train"), help="run folder (checkpoints, history, report)")
    exist_ok: bool = param(False, help="allow a new run in a folder that already holds one")
    device: str = param("auto", help="cpu, cuda, cuda:N, or auto (cuda when available)")
    threads: int | None = param(None, ge=1, help="torch CPU threads (default: torch's choice)")
    progress: bool = param(True, help="show progress bars")

    def __post_init__(self) -> None:
        object.__setattr__(self, "detector_kwargs", _kwargs_mapping(self.detector_kwargs))
        check_fields(self)
        if list(self.milestones) != sorted(set(self.milestones)):
            raise ValueError(f"DetectTrainConfig.milestones: expected strictly increasing fractions, "
                             f"got {list(self.milestones)}")
        if self.scale_jitter is not None and self.scale_jitter[0] > self.scale_jitter[1]:
            raise ValueError(f"DetectTrainConfig.scale_jitter: expected (low, high) with low <= high, "
                             f"got {list(self.scale_jitter)}")
        if self.fit_schedule_to_budget and self.time_budget_min is None:
            raise ValueError("DetectTrainConfig.fit_schedule_to_budget: needs time_budget_min (the minutes "
                             "to fit the schedule into); set it, or fit_schedule_to_budget: false")
        if self.mosaic > 0 and not self.letterbox:
            raise ValueError(f"DetectTrainConfig.mosaic: {self.mosaic} builds image_size x image_size squares "
                             "like the letterbox; set letterbox: true, or mosaic: 0")
        if self.mixup > 0 and self.mosaic == 0:
            raise ValueError(f"DetectTrainConfig.mixup: {self.mixup} blends two mosaic samples, but mosaic is 0; "
                             "set mosaic > 0, or mixup: 0")
        if any(p == "" for p in self.freeze):
            raise ValueError("DetectTrainConfig.freeze: expected non-empty parameter-name prefixes, got ''")


def _kwargs_mapping(value: Any) -> dict[str, Any]:
    """``detector_kwargs`` as a dict with str keys; a string is read as a YAML mapping."""
    given = value
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value) if value.strip() else {}
        except yaml.YAMLError as exc:
            raise ValueError(f"DetectTrainConfig.detector_kwargs: cannot parse {given!r} as a YAML "
                             f"mapping: {exc}") from None
        value = {} if value is None else value
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"DetectTrainConfig.detector_kwargs: expected a mapping of builder argument "
                         f"names to values, e.g. '{{backbone: resnet18}}', got {given!r}")
    reserved = sorted(set(value) & set(RESERVED_DETECTOR_KWARGS))
    if reserved:
        raise ValueError(f"DetectTrainConfig.detector_kwargs: {reserved} are set by the run itself "
                         "(num_classes from the dataset, image_size from the image_size key); remove them")
    return dict(value)


def total_iterations(config: DetectTrainConfig, batches_per_epoch: int) -> int:
    """Iterations of the whole run: ``max_iters``, else ``epochs * batches_per_epoch``."""
    assert batches_per_epoch > 0, "an epoch has at least one batch"
    return config.max_iters if config.max_iters is not None else config.epochs * batches_per_epoch


def close_mosaic_epoch(config: DetectTrainConfig, total_iters: int, batches_per_epoch: int) -> int | None:
    """The first epoch (0-based) trained without mosaic: the run has ``ceil(total_iters /
    batches_per_epoch)`` epochs (the last possibly partial, counted as one), the last
    ``close_mosaic`` of them have none; ``None`` when ``close_mosaic`` is 0 (at or below 0: no
    mosaic at all). Equivalently: an epoch has no mosaic when it starts within the run's last
    ``close_mosaic * batches_per_epoch`` iterations."""
    assert batches_per_epoch > 0, "an epoch has at least one batch"
    if config.close_mosaic == 0:
        return None
    return -(-total_iters // batches_per_epoch) - config.close_mosaic


def config_from_dict(data: dict[str, Any]) -> DetectTrainConfig:
    """Rebuild the config stored in a checkpoint (plain dict: lists for tuples, str for paths).

    Raises ``ValueError`` naming an unknown key (with the closest valid ones) or a bad value.
    """
    from classify.base.config import load_config

    data = dict(data)
    if isinstance(data.get("amp"), bool):  # checkpoints before amp became none|bf16|fp16: a bool for CUDA fp16
        data["amp"] = "fp16" if data["amp"] else "none"
    kwargs = data.pop("detector_kwargs", {})
    overrides = {key: _as_override(value) for key, value in data.items()}
    base = load_config(DetectTrainConfig, None, overrides)
    return DetectTrainConfig(**{**_fields(base), "detector_kwargs": kwargs})


def _as_override(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _fields(config: DetectTrainConfig) -> dict[str, Any]:
    from dataclasses import fields

    return {f.name: getattr(config, f.name) for f in fields(config)}
