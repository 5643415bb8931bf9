"""The "train a classifier backbone, then detect" path in one call.

:func:`pretrain_backbone` cuts the objects of a detection dataset's train (and val) split into
an image folder (:mod:`detect.data.crops`) and trains a ``classify`` model on it;
:func:`detector_config` points a detector preset at the resulting checkpoint
(``detector_kwargs.backbone_weights``); :func:`run_demo` is ``detect demo``.  Used by
``detect demo`` and ``tools/bench_detect_recipe.py``; by hand it is::

    detect data crops data/digit-scenes/coco --out data/digit-crops --split train --split val --size 48 --negatives 1 \
        --jitter 1 --partial 1
    classify train --config configs/classify/classify_resnet18_digit_crops.yaml
    detect train --config configs/detect/train_recipe.yaml

Only the train and val splits are cut: the test split's objects are never seen in pretraining.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from classify.base.config import load_config
from detect.engine.config import DetectTrainConfig

if TYPE_CHECKING:
    from detect.engine.trainer import TrainResult

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
CLASSIFIER_PRESET = CONFIGS / "classify" / "classify_resnet18_digit_crops.yaml"
RECIPE_PRESET = CONFIGS / "detect" / "train_recipe.yaml"
QUICK_CLASSIFIER_PRESET = CONFIGS / "classify" / "classify_resnet18_digit_crops_quick.yaml"  # detect demo
QUICK_PRESET = CONFIGS / "detect" / "train_quick.yaml"
PRETRAIN_SPLITS = ("train", "val")
#: export_crops options of the recipe's pretraining: one background crop an image (detector val mAP50
#: 0.679 vs 0.665), and crops like a detector's boxes for the classifier that rescores them
#: (detect.models.rcnn.rescore): a jittered copy of every object and one partial-object background window an image
RECIPE_CROPS = {"negatives": 1, "jitter": 1, "partial": 1}


@dataclass(frozen=True)
class Pretrained:
    """A pretrained backbone: the classifier checkpoint, its validation top-1 on the crops, and
    the wall minutes of cutting the crops and training it."""

    weights: Path
    val_top1: float
    minutes: float


def pretrain_backbone(data: str | Path, out: str | Path, preset: str | Path = CLASSIFIER_PRESET,
                      overrides: Mapping[str, Any] | None = None, crops: Mapping[str, int] | None = None,
                      log: Callable[[str], None] = print) -> Pretrained:
    """Cut the train/val objects of ``data`` into ``out/crops`` and train the classifier of
    ``preset`` on them (run folder ``out/classifier``).

    The crops are ``image_size`` pixels square (the preset's), so the classifier sees them
    unresized.  ``overrides`` are ``classify train`` settings, e.g. ``{"epochs": 2}``; ``crops``
    are :func:`detect.data.crops.export_crops` options (``negatives``, ``jitter``, ``partial``),
    e.g. :data:`RECIPE_CROPS`.
    """
    from classify.engine.config import TrainConfig
    from classify.engine.trainer import fit as fit_classifier
    from detect.data.crops import export_crops
    from detect.data.formats import load_split

    start = time.perf_counter()
    out = Path(out)
    folder = out / "crops"
    settings = {"output": str(out), "name": "classifier", "progress": "false", **dict(overrides or {}),
                "data": str(folder)}
    config = load_config(TrainConfig, preset, settings)
    size = config.image_size or 48
    for split in PRETRAIN_SPLITS:
        summary = export_crops(load_split(data, split), folder, size=size, **dict(crops or {}),
                               overwrite=True, progress=False)
        log(f"cut {summary.total} {split} crops into {summary.folder} ({size} px)")
    result = fit_classifier(config, log=lambda line: log(f"classifier: {line}"))
    minutes = (time.perf_counter() - start) / 60
    log(f"pretrained {config.model} on the crops: val top-1 {100 * result.best_top1:.2f}% in {minutes:.1f} min")
    return Pretrained(result.run_dir / "best.pt", result.best_top1, minutes)


def detector_config(preset: str | Path, backbone_weights: str | Path,
                    overrides: Mapping[str, Any] | None = None) -> DetectTrainConfig:
    """The detector run of ``preset`` (with ``overrides``) on the backbone ``backbone_weights``
    (the classifier checkpoint; a preset that rescores with a classifier, ``rescore_with``,
    rescores with this one too)."""
    config = load_config(DetectTrainConfig, preset, dict(overrides or {}))
    kwargs = {**config.detector_kwargs, "backbone_weights": str(backbone_weights)}
    if "rescore_with" in kwargs:
        kwargs["rescore_with"] = str(backbone_weights)
    return dataclasses.replace(config, detector_kwargs=kwargs)


def run_demo(data_dir: str | Path, run_dir: str | Path) -> TrainResult:
    """The main job on the embedded defaults (``detect demo``): build the digit scenes in
    ``data_dir``, pretrain a ResNet-18 on their train/val digit crops, train the quick Faster
    R-CNN preset on that backbone in ``run_dir/detector``, evaluate it on the test split and write
    the report and annotated images there."""
    from detect.data.build import build_digit_scenes
    from detect.data.scene_config import scene_config
    from detect.engine.trainer import fit

    data_dir, run_dir = Path(data_dir), Path(run_dir)
    build_digit_scenes(data_dir, scene_config("default"))
    data = data_dir / "coco"
    backbone = pretrain_backbone(data, run_dir, QUICK_CLASSIFIER_PRESET)
    overrides = {"data": str(data), "output": str(run_dir / "detector"), "exist_ok": True}
    result = fit(detector_config(QUICK_PRESET, backbone.weights, overrides))
    test = result.test_metrics or {}
    print(f"\nquick Faster R-CNN on a pretrained ResNet-18 ({backbone.minutes:.1f} min pretraining, "
          f"{result.iterations} iterations in {result.minutes:.1f} training minutes): "
          f"test AP50 {test.get('AP50', float('nan')):.3f}, AP50-95 {test.get('AP', float('nan')):.3f}")
    print(f"report: {result.run_dir / 'metrics.md'}  annotated test images: {result.run_dir / 'examples.png'}")
    return result
