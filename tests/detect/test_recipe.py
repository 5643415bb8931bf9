"""``detect.tasks.recipe``: crops -> classifier -> detector on that backbone, end to end on tiny scenes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from classify.base.checkpoint import load_checkpoint
from classify.base.config import load_config
from detect.data.build import build_digit_scenes
from detect.data.scene_config import scene_config
from detect.engine.config import DetectTrainConfig
from detect.engine.trainer import fit
from detect.models.loading import build_detector, load_detector
from detect.tasks.recipe import (
    CLASSIFIER_PRESET,
    QUICK_CLASSIFIER_PRESET,
    QUICK_PRESET,
    RECIPE_CROPS,
    RECIPE_PRESET,
    detector_config,
    pretrain_backbone,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    build_digit_scenes(out, scene_config("tiny"), progress=False, workers=1)
    return out / "coco"


def test_pretrained_backbone_feeds_the_detector(tiny: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    backbone = pretrain_backbone(tiny, tmp_path / "pre", QUICK_CLASSIFIER_PRESET,
                                 {"epochs": 1, "batch_size": 16, "threads": 1, "device": "cpu"}, crops=RECIPE_CROPS,
                                 log=lines.append)
    assert backbone.weights == tmp_path / "pre" / "classifier" / "best.pt" and backbone.weights.is_file()
    assert 0.0 <= backbone.val_top1 <= 1.0 and backbone.minutes > 0
    assert sorted(p.name for p in (tmp_path / "pre" / "crops").iterdir()) == ["train", "val"]  # never test
    assert any((tmp_path / "pre" / "crops" / "train" / "background").glob("*.png"))
    assert any("crops into" in line for line in lines) and any("pretrained resnet18" in line for line in lines)
    classifier = load_checkpoint(backbone.weights).model  # digits + background: its head is not the detector's

    config = detector_config(QUICK_PRESET, backbone.weights, {
        "data": str(tiny), "output": str(tmp_path / "det"), "image_size": 64, "max_iters": 2, "warmup_iters": 1,
        "threads": 1, "device": "cpu", "progress": False, "report_examples": 1})
    assert config.detector_kwargs["backbone_weights"] == str(backbone.weights)
    assert config.detector_kwargs["backbone"] == "resnet18"
    result = fit(config)
    assert result.iterations == 2 and result.test_metrics is not None
    detector, _ = load_detector(result.best, torch.device("cpu"))
    # the frozen stem still holds the classifier's weights after training
    assert torch.equal(detector.state_dict()["backbone.body.body.conv1.weight"], classifier["body.conv1.weight"])

    # the same classifier rescoring the detections: the detector checkpoint alone rebuilds it
    rescoring = dataclasses.replace(config, output=str(tmp_path / "rescored"), detector_kwargs={
        **config.detector_kwargs, "rescore_with": str(backbone.weights)})
    result = fit(rescoring)
    assert result.test_metrics is not None
    backbone.weights.rename(tmp_path / "moved.pt")
    detector, names = load_detector(result.best, torch.device("cpu"))
    assert detector.rescorer is not None and detector.rescorer.spec.class_names[-1] == "background"
    assert detector.rescorer.class_map.tolist() == list(range(len(names)))
    assert torch.equal(detector.state_dict()["rescorer.classifier.body.conv1.weight"], classifier["body.conv1.weight"])


@pytest.mark.parametrize("preset", [RECIPE_PRESET, QUICK_PRESET])
def test_recipe_presets_load(preset: Path) -> None:
    config = load_config(DetectTrainConfig, preset)
    assert config.detector == "faster_rcnn" and config.detector_kwargs["backbone"] == "resnet18"
    assert config.hflip == 0.0 and config.threads in (None, 1, 2)  # the machine has 2 cores
    kwargs = {k: v for k, v in config.detector_kwargs.items() if k not in ("backbone_weights", "rescore_with")}
    detector = build_detector(config.detector, 10, config.image_size, kwargs)  # every option is known
    assert detector.transform.min_size == (config.image_size,)
    if "rescore_with" in config.detector_kwargs:  # the recipe rescores with the classifier it pretrains
        assert detector_config(preset, "pre/best.pt").detector_kwargs["rescore_with"] == "pre/best.pt"


def test_classifier_presets_are_the_digit_crop_runs() -> None:
    from classify.engine.config import TrainConfig

    for preset in (CLASSIFIER_PRESET, QUICK_CLASSIFIER_PRESET):
        config = load_config(TrainConfig, preset)
        assert config.model == "resnet18" and config.hflip == 0.0 and config.name == "classifier"
