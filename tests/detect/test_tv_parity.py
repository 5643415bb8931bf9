"""torchvision ``fasterrcnn_*`` state dicts load into our composed models and give the same outputs.

Random (seeded, perturbed) weights stand in for the COCO files: torchvision's model is built with
``weights=None, weights_backbone=None, num_classes=91``, its parameters and BatchNorm statistics
perturbed, its state dict saved and loaded into ours; eval detections (labels shifted by one) and
training losses (same seed) must match to 1e-5.
"""

from __future__ import annotations

import pytest
import torch
import torchvision.models.detection as tvd
from torch import nn
from torchvision.models import mobilenet_v3_large, resnet50
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import _mobilenet_extractor, _resnet_fpn_extractor
from torchvision.models.detection.faster_rcnn import FasterRCNN as TvFasterRCNN
from torchvision.ops.misc import FrozenBatchNorm2d

from detect.models.rcnn.tv_layout import convert_torchvision_state_dict
from detect.models.rcnn.tv_variants import COCO_CLASS_NAMES, add_torchvision_taps, load_torchvision_checkpoint
from detect.models.registry import get_detector

SIZE = 128
#: the same options on both sides: keep every detection (so the comparison is not vacuous) and
#: fewer proposals / sampled RoIs (so the box heads stay cheap on 2 CPU cores)
EVAL = dict(box_score_thresh=0.0, rpn_pre_nms_top_n_test=200, rpn_post_nms_top_n_test=100,
            rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=100, box_batch_size_per_image=64)
VARIANTS = [
    pytest.param("fasterrcnn_mobilenet_v3_large_320_fpn", id="mobilenet_v3_large_320_fpn"),
    pytest.param("fasterrcnn_mobilenet_v3_large_fpn", id="mobilenet_v3_large_fpn"),
    pytest.param("fasterrcnn_resnet50_fpn", id="resnet50_fpn", marks=pytest.mark.slow),
    pytest.param("fasterrcnn_resnet50_fpn_v2", id="resnet50_fpn_v2", marks=pytest.mark.slow),
]


def perturb(model: nn.Module, seed: int = 0) -> None:
    """Seeded changes to every weight and BatchNorm statistic, small enough to stay finite."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.75)
            elif name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.05)
            else:  # scale by 1 +- 10 %, and shift so that zero-initialised biases differ too
                noise = torch.randn(t.shape, generator=g)
                t.mul_(1 + 0.1 * noise).add_(0.01 * noise)


def images() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.rand(3, SIZE, SIZE - 24, generator=g), torch.rand(3, SIZE - 40, SIZE, generator=g)]


def targets(one_based: bool) -> list[dict[str, torch.Tensor]]:
    shift = 1 if one_based else 0
    return [
        {"boxes": torch.tensor([[5.0, 6, 60, 70], [20, 10, 90, 50]]),
         "labels": torch.tensor([2, 40]) + shift},
        {"boxes": torch.tensor([[30.0, 20, 80, 60]]), "labels": torch.tensor([89]) + shift},
    ]


def assert_same_detections(theirs: list[dict], ours: list[dict]) -> None:
    assert sum(len(t["boxes"]) for t in theirs) > 0
    for t, o in zip(theirs, ours):
        torch.testing.assert_close(o["boxes"], t["boxes"], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(o["scores"], t["scores"], rtol=1e-5, atol=1e-5)
        assert torch.equal(o["labels"], t["labels"] - 1)


def assert_same_losses(tv: nn.Module, ours: nn.Module) -> None:
    tv.train()
    ours.train()
    torch.manual_seed(123)
    expected = tv(images(), targets(one_based=True))
    torch.manual_seed(123)
    got = ours(images(), targets(one_based=False))
    assert set(got) == set(expected)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_torchvision_checkpoint_parity(variant: str, tmp_path) -> None:
    torch.manual_seed(0)
    tv = getattr(tvd, variant)(weights=None, weights_backbone=None, num_classes=91,
                               min_size=SIZE, max_size=SIZE, **EVAL)
    perturb(tv)
    path = tmp_path / f"{variant}.pth"
    torch.save(tv.state_dict(), path)

    ours = get_detector("faster_rcnn_" + variant.removeprefix("fasterrcnn_"), weights=path,
                        image_size=SIZE, **EVAL)
    assert ours.num_classes == 90 and ours.class_names == list(COCO_CLASS_NAMES)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in tv.parameters())
    with torch.no_grad():
        assert_same_detections(tv.eval()(images()), ours.eval()(images()))
    assert_same_losses(tv, ours)


def _settings(model: nn.Module) -> dict:
    rpn, roi, tf = model.rpn, model.roi_heads, model.transform
    anchors = rpn.anchor_generator
    return dict(
        rpn=(rpn._pre_nms_top_n, rpn._post_nms_top_n, rpn.nms_thresh, rpn.score_thresh,
             rpn.min_size, rpn.proposal_matcher.high_threshold, rpn.proposal_matcher.low_threshold,
             rpn.fg_bg_sampler.batch_size_per_image, rpn.fg_bg_sampler.positive_fraction,
             rpn.box_coder.weights, anchors.sizes, anchors.aspect_ratios),
        roi=(roi.score_thresh, roi.nms_thresh, roi.detections_per_img,
             roi.proposal_matcher.high_threshold, roi.fg_bg_sampler.batch_size_per_image,
             roi.fg_bg_sampler.positive_fraction, roi.box_coder.weights,
             roi.box_roi_pool.output_size, roi.box_roi_pool.sampling_ratio),
        transform=(tf.min_size, tf.max_size, tf.image_mean, tf.image_std, tf.size_divisible),
        modules=[(k, tuple(v.shape)) for k, v in model.state_dict().items()
                 if not k.startswith("backbone.body.")])


@pytest.mark.parametrize("variant", [
    "fasterrcnn_mobilenet_v3_large_320_fpn", "fasterrcnn_mobilenet_v3_large_fpn",
    pytest.param("fasterrcnn_resnet50_fpn", marks=pytest.mark.slow),
    pytest.param("fasterrcnn_resnet50_fpn_v2", marks=pytest.mark.slow)])
def test_variant_defaults_equal_torchvision(variant: str) -> None:
    tv = getattr(tvd, variant)(weights=None, weights_backbone=None, num_classes=91)
    ours = get_detector("faster_rcnn_" + variant.removeprefix("fasterrcnn_"), num_classes=90)
    assert _settings(ours) == _settings(tv)


def test_coco_pretrained_layout_matches_torchvision(tmp_path) -> None:
    """As torchvision builds it for its COCO weights: FrozenBatchNorm2d (eps 1e-5), 3 stages
    trainable; same outputs, same losses and the same trainable parameters."""
    torch.manual_seed(0)
    body = _mobilenet_extractor(mobilenet_v3_large(norm_layer=FrozenBatchNorm2d), True, 3)
    anchors = AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)
    tv = TvFasterRCNN(body, 91, rpn_anchor_generator=anchors, min_size=320, max_size=640,
                      rpn_score_thresh=0.05, **EVAL)
    perturb(tv, seed=2)
    torch.save(tv.state_dict(), tmp_path / "coco.pth")
    ours = load_torchvision_checkpoint(tmp_path / "coco.pth", "mobilenet_v3_large_320_fpn",
                                       as_coco_pretrained=True, **EVAL)
    frozen = [m for m in ours.backbone.body.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert frozen and all(m.eps == 1e-5 for m in frozen)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in ours.backbone.body.modules())
    trainable = {k for k, p in tv.named_parameters() if p.requires_grad}
    names = convert_torchvision_state_dict(dict.fromkeys(trainable, torch.zeros(0)), ours.state_dict())
    assert set(names) == {k for k, p in ours.named_parameters() if p.requires_grad}
    with torch.no_grad():
        assert_same_detections(tv.eval()(images()), ours.eval()(images()))
    assert_same_losses(tv, ours)


@pytest.mark.slow
def test_coco_pretrained_resnet50_uses_eps_zero(tmp_path) -> None:
    """torchvision's COCO_V1 ResNet-50-FPN: FrozenBatchNorm2d with eps 0 (``overwrite_eps``)."""
    torch.manual_seed(0)
    tv = TvFasterRCNN(_resnet_fpn_extractor(resnet50(norm_layer=FrozenBatchNorm2d), 3), 91,
                      min_size=SIZE, max_size=SIZE, **EVAL)
    for m in tv.modules():
        if isinstance(m, FrozenBatchNorm2d):
            m.eps = 0.0
    perturb(tv, seed=3)
    torch.save(tv.state_dict(), tmp_path / "coco.pth")
    ours = load_torchvision_checkpoint(tmp_path / "coco.pth", "fasterrcnn_resnet50_fpn",
                                       as_coco_pretrained=True, image_size=SIZE, **EVAL)
    assert {m.eps for m in ours.backbone.body.modules() if isinstance(m, FrozenBatchNorm2d)} == {0.0}
    with torch.no_grad():
        assert_same_detections(tv.eval()(images()), ours.eval()(images()))


def test_mobilenet_taps_added_where_torchvision_reads() -> None:
    from classify import get_model

    body = add_torchvision_taps(get_model("mobilenet_v3_large", num_classes=0))
    assert [(f.name, f.channels, f.stride) for f in body.feature_info] == [
        ("features.1", 16, 2), ("features.3", 24, 4), ("features.6", 40, 8),
        ("features.12", 112, 16), ("features.13", 160, 32), ("features.16", 960, 32)]
    feats = body.eval().features(torch.rand(1, 3, 64, 64))
    assert feats["features.13"].shape == (1, 160, 2, 2)


def test_other_class_count_keeps_all_but_the_predictor(tmp_path) -> None:
    tv = tvd.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, num_classes=91)
    perturb(tv)
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    ours = load_torchvision_checkpoint(tmp_path / "tv.pth", "fasterrcnn_mobilenet_v3_large_320_fpn",
                                       num_classes=4)
    assert ours.num_classes == 4 and ours.class_names is None
    assert ours.roi_heads.box_predictor.cls_score.out_features == 5
    assert torch.equal(ours.roi_heads.box_head.fc7.weight, tv.roi_heads.box_head.fc7.weight)
    assert torch.equal(ours.backbone.body.body.features[13].block[0][0].weight,
                       tv.backbone.body["13"].block[0][0].weight)
    with pytest.raises(ValueError, match="unknown torchvision Faster R-CNN variant 'resnet18_fpn'"):
        load_torchvision_checkpoint(tmp_path / "tv.pth", "resnet18_fpn")
    with pytest.raises(ValueError, match="weights do not fit.*missing keys"):
        load_torchvision_checkpoint(tmp_path / "tv.pth", "resnet50_fpn_v2")
