"""``detect.models.rcnn.rescore``: crops as the classifier was trained on, the score rule, class binding, and the
rescorer inside Faster R-CNN (frozen in training, rebuilt from a detector checkpoint alone)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from torch import Tensor, nn

from classify import get_model, get_model_entry
from classify.base.checkpoint import save_checkpoint
from detect.data.crops import crop_window, cut, mean_colour
from detect.models.rcnn.faster_rcnn import faster_rcnn
from detect.models.rcnn.rescore import CropRescorer, RescorerSpec
from detect.models.rcnn.tv_variants import build_from_config

CLASSES = ["cat", "dog", "background"]
SMALL = dict(rpn_batch_size_per_image=32, box_batch_size_per_image=16, rpn_pre_nms_top_n_train=64,
             rpn_post_nms_top_n_train=32, rpn_pre_nms_top_n_test=32, rpn_post_nms_top_n_test=16,
             representation_size=32, out_channels=32, box_score_thresh=0.0)


class FixedLogits(nn.Module):
    """A 'classifier' whose logits are the same rows for every batch: ``logits[i % len]``."""

    def __init__(self, logits: Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, x: Tensor) -> Tensor:
        return self.logits[torch.arange(len(x)) % len(self.logits)]


def _classifier_file(tmp_path: Path, size: int = 32) -> Path:
    model = get_model("resnet18", num_classes=len(CLASSES))
    return save_checkpoint(tmp_path / "classifier.pt", model.state_dict(),
                           config={"model": "resnet18", "image_size": size}, class_names=CLASSES)


def _detections(scores: list[float], labels: list[int]) -> dict[str, Tensor]:
    n = len(scores)
    boxes = torch.tensor([[4.0 + i, 6.0, 30.0 + 2 * i, 40.0] for i in range(n)]).reshape(n, 4)
    return {"boxes": boxes, "scores": torch.tensor(scores), "labels": torch.tensor(labels, dtype=torch.long)}


def test_crops_match_the_exported_training_crops() -> None:
    """RoIAlign crops of random boxes against detect.data.crops' PIL crops (what the classifier
    was trained on), for windows inside and reaching outside the image, down- and upsampled."""
    rng = np.random.default_rng(0)
    noise = Image.fromarray((rng.random((120, 160, 3)) * 255).astype(np.uint8))
    pixels = np.array(noise.filter(ImageFilter.GaussianBlur(3)))  # smooth, like photographs, not pixel noise
    image = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255
    spec = RescorerSpec("resnet18", tuple(CLASSES), 48)
    rescorer = CropRescorer(nn.Identity(), spec, num_classes=2)
    entry = get_model_entry("resnet18")
    mean, std = torch.tensor(entry.mean).view(3, 1, 1), torch.tensor(entry.std).view(3, 1, 1)
    for _ in range(20):
        x1, y1 = rng.uniform(-10, 140), rng.uniform(-10, 100)
        box = (x1, y1, x1 + rng.uniform(8, 90), y1 + rng.uniform(8, 90))
        ours = rescorer.crops(image, torch.tensor([box]))[0] * std + mean
        pil = cut(Image.fromarray(pixels), crop_window(box, "square", spec.context), 48, mean_colour(pixels))
        reference = torch.from_numpy(np.array(pil)).permute(2, 0, 1).float() / 255
        assert (ours - reference).abs().mean() < 0.03, box


def test_scores_are_the_weighted_geometric_mean_best_first() -> None:
    # the classifier's probabilities (cat, dog, background) of crop 0, 1 and 2
    probs = torch.tensor([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.5, 0.2, 0.3]])
    spec = RescorerSpec("resnet18", tuple(CLASSES), 16)
    rescorer = CropRescorer(FixedLogits(probs.log()), spec, num_classes=2, weight=0.5, min_score=0.05)
    rescorer.bind(["cat", "dog"])
    images = [torch.rand(3, 50, 60)]
    # detections: 0.4 cat, 0.9 cat, 0.3 dog, 0.01 dog (under min_score: dropped, never cropped)
    out = rescorer(images, [_detections([0.4, 0.9, 0.3, 0.01], [0, 0, 1, 1])])[0]
    expected = [0.4 ** 0.5 * 0.9 ** 0.5, 0.9 ** 0.5 * 0.1 ** 0.5, 0.3 ** 0.5 * 0.2 ** 0.5]  # p of its own label
    assert out["scores"].tolist() == pytest.approx(expected, abs=1e-6)
    assert out["labels"].tolist() == [0, 0, 1] and out["boxes"].shape == (3, 4)
    unchanged = CropRescorer(FixedLogits(probs.log()), spec, num_classes=2, weight=0.0)
    unchanged.bind(["cat", "dog"])
    same = unchanged(images, [_detections([0.4, 0.9], [0, 0])])[0]
    assert same["scores"].tolist() == pytest.approx([0.9, 0.4])
    empty = rescorer(images, [_detections([], [])])[0]
    assert empty["boxes"].shape == (0, 4) and empty["scores"].shape == (0,)


def test_binding_maps_by_name_and_unbound_or_unknown_classes_fail() -> None:
    spec = RescorerSpec("resnet18", ("dog", "background", "cat"), 16)
    rescorer = CropRescorer(FixedLogits(torch.zeros(1, 3)), spec, num_classes=2)
    with pytest.raises(RuntimeError, match="bind"):
        rescorer([torch.rand(3, 20, 20)], [_detections([0.5], [0])])
    with pytest.raises(ValueError, match="no class 'bird'"):
        rescorer.bind(["cat", "bird"])
    with pytest.raises(ValueError, match="3 class names for a 2-class"):
        rescorer.bind(["cat", "dog", "bird"])
    rescorer.bind(["cat", "dog"])
    assert rescorer.class_map.tolist() == [2, 0]
    with pytest.raises(ValueError, match=r"weight must be in \[0, 1\]"):
        CropRescorer(nn.Identity(), spec, num_classes=2, weight=1.5)


def test_faster_rcnn_rescores_in_eval_and_keeps_the_classifier_frozen(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = _classifier_file(tmp_path)
    model = faster_rcnn("resnet18", fpn=True, image_size=64, class_names=["cat", "dog"],
                        rescore_with=source, rescore_weight=0.5, **SMALL)
    assert model.rescorer is not None and model.rescorer.class_map.tolist() == [0, 1]
    assert model.config["rescore_with"] == {"model": "resnet18", "class_names": CLASSES, "size": 32,
                                            "context": 0.15}
    before = {k: v.clone() for k, v in model.rescorer.classifier.state_dict().items()}
    model.train()
    assert not model.rescorer.classifier.training  # its batch-norm statistics stay the classifier's
    images = [torch.rand(3, 64, 64), torch.rand(3, 64, 64)]
    targets = [{"boxes": torch.tensor([[5.0, 5.0, 40.0, 50.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    losses = model(images, targets)
    sum(losses.values()).backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    torch.optim.SGD(trainable, lr=0.1).step()
    assert all(not p.requires_grad for p in model.rescorer.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.rescorer.classifier.state_dict().items())

    model.eval()
    with torch.no_grad():
        refined = model(images)
        model.rescorer, rescorer = None, model.rescorer
        plain = model(images)
    expected = rescorer(images, plain)
    for ours, ref in zip(refined, expected):
        assert torch.equal(ours["labels"], ref["labels"]) and torch.allclose(ours["scores"], ref["scores"])
        assert bool((ours["scores"][:-1] >= ours["scores"][1:]).all())

    model.rescorer = rescorer  # the spec in the config rebuilds it without the classifier file
    source.unlink()
    rebuilt = build_from_config(model.config, class_names=["cat", "dog"])
    rebuilt.load_state_dict(model.state_dict())
    rebuilt.eval()
    with torch.no_grad():
        again = rebuilt(images)
    assert all(torch.allclose(a["scores"], b["scores"]) for a, b in zip(again, refined))


def test_rescoring_classifier_files_are_checked(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="rescoring classifier checkpoint not found"):
        CropRescorer.from_checkpoint(tmp_path / "missing.pt", num_classes=2)
    bare = save_checkpoint(tmp_path / "bare.pt", get_model("resnet18", num_classes=3).state_dict(),
                           config={"model": "resnet18", "num_classes": 3})  # no class names, no image size
    with pytest.raises(ValueError, match="needs a 'classify train' checkpoint"):
        CropRescorer.from_checkpoint(bare, num_classes=2)
    spec = CropRescorer.from_checkpoint(_classifier_file(tmp_path), num_classes=2).spec
    assert spec == RescorerSpec("resnet18", tuple(CLASSES), 32)
    assert RescorerSpec.from_dict(spec.to_dict()) == spec
