"""``TrainConfig``: every setting of one classifier training run, as a frozen dataclass.

Read from a YAML preset (``configs/classify/classify_*.yaml``) and command-line flags by
:mod:`classify.base.config`; stored, resolved, in every checkpoint, so that ``classify train --resume
runs/classify/<name>/last.pt`` and ``classify eval`` rebuild the run from the checkpoint alone.

Units: sizes in pixels, durations in epochs (one epoch = one pass over the training split);
learning rates change every iteration (one iteration = one optimiser step on one batch).

Fields left ``None`` are resolved from the data and the model entry when a run starts
(:func:`classify.engine.trainer.resolve_config`): ``image_size`` from the entry's ``input_size``,
``in_chans`` from the data (or the entry's channels when pretrained ``weights`` are loaded),
``num_classes`` from the data, ``hflip`` from the dataset (on for Fashion-MNIST and image
folders, off for digits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from classify.base.config import check_fields, param

__all__ = ["TrainConfig"]

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


@dataclass(frozen=True)
class TrainConfig:
    """One training run of a registry classifier on a dataset (see the module docstring)."""

    # -- data
    data: str = param("mnist5k", help="dataset: mnist5k, fashion, digits, or an image folder "
                      "(root/<class>/*.png, or root/{train,val,test}/<class>/*.png)")
    subset: int | None = param(None, ge=1, help="train on this many images a class, drawn with "
                               "the seed (all of a smaller class)")
    test_subset: int | None = param(None, ge=1, help="validate and test on this many images a class")
    val_fraction: float = param(0.0, ge=0, lt=1, help="hold out this share of the training split "
                                "(stratified) to validate and choose best.pt; 0: validate on the "
                                "dataset's val split, else its test split")
    image_size: int | None = param(None, ge=8, le=1024, help="square model input in px "
                                   "(default: the model's input_size)")
    fit_mode: Literal["resize", "pad"] = param("resize", help="how images reach image_size: "
                                               "bilinear resize, or zero-pad around the centre "
                                               "(smaller images only; larger ones are resized)")
    # -- augmentation (training split only)
    crop_padding: float = param(0.125, ge=0, le=0.5, help="random crop of the original size "
                                "after zero-padding every side by this fraction of the side; 0: off")
    hflip: float | None = param(None, ge=0, le=1, help="horizontal-flip probability (default: "
                                "0.5 for fashion and image folders, 0 for digits)")
    brightness: float = param(0.0, ge=0, lt=1, help="multiply pixels by a factor drawn from "
                              "[1 - b, 1 + b]")
    contrast: float = param(0.0, ge=0, lt=1, help="blend each image with its mean by a factor "
                            "drawn from [1 - c, 1 + c]")
    erasing: float = param(0.0, ge=0, le=1, help="random-erasing probability: a noise rectangle "
                           "of 2-33% of the image, aspect 0.3-3.3 (Zhong et al., 2017)")
    # -- model
    model: str = param("lenet5", help="registry name (see 'classify list')")
    weights: str | None = param(None, help="packaged weights tag (e.g. imagenet) or a local "
                                "state dict / checkpoint; the classifier is re-initialised when "
                                "the class count differs")
    num_classes: int | None = param(None, ge=1, help="classes (default: from the data; a "
                                    "different value is an error)")
    in_chans: int | None = param(None, ge=1, le=3, help="model input channels (default: the "
                                 "data's; the model's own with pretrained weights); grey images "
                                 "are repeated to 3 channels, colour ones averaged to 1")
    drop_rate: float | None = param(None, ge=0, lt=1, help="probability of every dropout layer "
                                    "of the model (default: the model's own; an error for models "
                                    "without dropout)")
    bn_momentum: float | None = param(None, gt=0, le=1, help="running-statistics momentum of "
                                      "every batch-norm layer (default: the model's own; 0.1 suits "
                                      "short runs of models ported from TensorFlow, e.g. Lite0)")
    freeze_backbone: bool = param(False, help="train only the classifier; the backbone stays "
                                  "in eval mode (fixed batch-norm statistics): a feature extractor")
    backbone_lr_scale: float = param(1.0, gt=0, le=1, help="fine-tuning: the backbone's lr is "
                                     "lr times this (the classifier gets lr)")
    # -- optimisation
    epochs: int = param(10, ge=1, help="passes over the training split")
    batch_size: int = param(128, ge=1, help="images per iteration")
    optimizer: Literal["sgd", "adam", "adamw", "rmsprop"] = param("sgd", help="optimiser")
    lr: float = param(0.05, gt=0, help="peak learning rate (of the classifier)")
    momentum: float = param(0.9, ge=0, lt=1, help="SGD/RMSProp momentum; Adam/AdamW beta1")
    nesterov: bool = param(False, help="Nesterov momentum (SGD only)")
    weight_decay: float = param(5e-4, ge=0, help="L2 (SGD, Adam, RMSProp) or decoupled (AdamW) "
                                "weight decay; never applied to biases and normalisation weights")
    schedule: Literal["constant", "step", "cosine", "onecycle"] = param(
        "cosine", help="learning-rate schedule, stepped every iteration")
    warmup_epochs: float = param(0.0, ge=0, help="linear warm-up from lr * warmup_factor (step, "
                                 "cosine, constant); onecycle: its rise (default 30% of the run)")
    warmup_factor: float = param(0.1, gt=0, le=1, help="lr factor at the first warm-up iteration")
    lr_step_size: float = param(3.0, gt=0, help="step schedule: multiply the lr by lr_gamma "
                                "every this many epochs")
    lr_gamma: float = param(0.1, gt=0, le=1, help="step schedule: lr factor per step")
    min_lr_ratio: float = param(0.0, ge=0, le=1, help="cosine: final lr as a fraction of lr")
    label_smoothing: float = param(0.0, ge=0, lt=1, help="cross-entropy label smoothing")
    grad_clip: float | None = param(None, gt=0, help="clip the global gradient L2 norm")
    amp: Literal["none", "bf16", "fp16"] = param("none", help="mixed precision: bf16 on CUDA or the CPU "
                                                 "(AMX/AVX-512 BF16), fp16 on CUDA only")
    channels_last: bool = param(False, help="channels-last memory format (CPU too: 2x faster depthwise convs)")
    # -- run
    seed: int = param(0, ge=0, help="seed of initialisation, data order, augmentation and subsets")
    device: str = param("auto", help="auto (cuda if available), cpu, cuda or cuda:N")
    workers: int = param(0, ge=0, help="DataLoader worker processes")
    threads: int | None = param(None, ge=1, help="torch intra-op CPU threads (default: torch's)")
    eval_batch_size: int = param(256, ge=1, help="images per evaluation batch")
    output: Path = param(Path("runs/classify"), help="parent folder of run folders")
    name: str | None = param(None, help="run folder name (default: <model>_<data>; a numeric "
                             "suffix is added when it already holds a run)")
    progress: bool = param(True, help="show progress bars")

    def __post_init__(self) -> None:
        check_fields(self)
        if not _DEVICE.match(self.device):
            raise ValueError(f"TrainConfig.device: expected auto, cpu, cuda, cuda:N or mps, "
                             f"got {self.device!r}")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ValueError(f"TrainConfig.nesterov: needs optimizer 'sgd' with momentum > 0, "
                             f"got optimizer {self.optimizer!r}, momentum {self.momentum}")
        if not self.data.strip():
            raise ValueError("TrainConfig.data: expected a dataset name or folder, got ''")
        if self.name is not None and (not self.name or "/" in self.name or self.name in (".", "..")):
            raise ValueError(f"TrainConfig.name: expected a folder name without '/', got {self.name!r}")
