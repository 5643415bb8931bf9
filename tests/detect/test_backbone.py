"""The contract adapter (levels from ``feature_info``, pruning, freezing, weights) and the anchors."""

from __future__ import annotations

import pytest
import torch
import torchvision.models as tvm
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from classify import get_model
from classify.base.checkpoint import save_checkpoint
from classify.models.features import FeatureInfo
from detect.models.anchors import anchor_sizes_for, fit_anchor_sizes, normalize_anchor_sizes
from detect.models.backbone import (
    BackboneC4,
    BackboneWithFPN,
    build_backbone,
    freeze_batchnorm,
    select_c4_level,
    select_fpn_levels,
    usable_backbones,
)


def _randomize(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) + 0.5 if name.endswith("running_var")
                        else torch.randn(t.shape, generator=g) * 0.05)


# -- level selection ----------------------------------------------------------------------------
def test_fpn_levels_follow_feature_info_resnet18() -> None:
    bb = build_backbone("resnet18", fpn=True)
    assert isinstance(bb, BackboneWithFPN)
    assert [(f.name, f.channels, f.stride) for f in bb.levels] == [
        ("layer1", 64, 4), ("layer2", 128, 8), ("layer3", 256, 16), ("layer4", 512, 32)]
    assert [(f.name, f.channels, f.stride) for f in bb.feature_info] == [
        ("layer1", 256, 4), ("layer2", 256, 8), ("layer3", 256, 16), ("layer4", 256, 32),
        ("pool", 256, 64)]
    out = bb.eval()(torch.rand(1, 3, 64, 96))
    assert list(out) == [f.name for f in bb.feature_info]
    assert [tuple(v.shape[1:]) for v in out.values()] == [
        (256, 16, 24), (256, 8, 12), (256, 4, 6), (256, 2, 3), (256, 1, 2)]


def test_fpn_levels_follow_feature_info_mobilenet_v3_large() -> None:
    bb = build_backbone("mobilenet_v3_large", fpn=True, out_channels=64)
    assert [(f.name, f.channels, f.stride) for f in bb.levels] == [
        ("features.3", 24, 4), ("features.6", 40, 8), ("features.12", 112, 16),
        ("features.16", 960, 32)]
    assert [f.stride for f in bb.feature_info] == [4, 8, 16, 32, 64]
    out = bb.eval()(torch.rand(1, 3, 64, 64))
    assert [v.shape[-1] for v in out.values()] == [16, 8, 4, 2, 1]
    assert all(v.shape[1] == 64 for v in out.values())


def test_select_levels_rules() -> None:
    info = [FeatureInfo("a", 8, 2), FeatureInfo("b", 8, 4), FeatureInfo("b2", 16, 4),
            FeatureInfo("c", 16, 8), FeatureInfo("d", 32, 16), FeatureInfo("e", 64, 32),
            FeatureInfo("f", 64, 64)]
    # deepest map of each stride >= 4, the last four
    assert [f.name for f in select_fpn_levels(info)] == ["c", "d", "e", "f"]
    assert select_c4_level(info).name == "d"
    with pytest.raises(ValueError, match="stride >= 16"):
        select_fpn_levels([FeatureInfo("x", 8, 4), FeatureInfo("y", 8, 8)])
    with pytest.raises(ValueError, match="stride-16"):
        select_c4_level([FeatureInfo("x", 8, 4), FeatureInfo("y", 8, 32)])


def test_c4_adapter_projects_the_stride16_map() -> None:
    bb = build_backbone("resnet18", fpn=False, out_channels=128)
    assert isinstance(bb, BackboneC4)
    assert [(f.name, f.stride) for f in bb.levels] == [("layer3", 16)]
    assert bb.feature_info == [FeatureInfo("layer3", 128, 16)]
    out = bb.eval()(torch.rand(2, 3, 64, 80))
    assert list(out) == ["layer3"] and out["layer3"].shape == (2, 128, 4, 5)


def test_explicit_levels_and_their_errors() -> None:
    bb = build_backbone("resnet18", levels=("layer2", "layer4"))
    assert [f.stride for f in bb.feature_info] == [8, 32, 64]
    with pytest.raises(ValueError, match=r"unknown: \['layer9'\]"):
        build_backbone("resnet18", levels=("layer2", "layer9"))
    with pytest.raises(ValueError, match="non-decreasing stride"):
        build_backbone("resnet18", levels=("layer4", "layer2"))
    with pytest.raises(ValueError, match="exactly one level"):
        build_backbone("resnet18", fpn=False, levels=("layer2", "layer3"))


def test_usable_backbones_exclude_lenet_with_clear_error() -> None:
    usable = usable_backbones()
    assert "lenet5" not in usable and "resnet18" in usable and "mobilenet_v3_large" in usable
    with pytest.raises(ValueError, match=r"'lenet5' cannot serve a detector.*resnet18"):
        build_backbone("lenet5")
    with pytest.raises(ValueError, match="resnet18"):  # close-match hint from the classify registry
        build_backbone("resnet1")


# -- pruning ------------------------------------------------------------------------------------
def test_pruning_drops_head_and_unused_stages_keeping_used_maps() -> None:
    torch.manual_seed(0)
    reference = get_model("resnet18", num_classes=0).eval()
    c4 = build_backbone("resnet18", fpn=False)
    c4.body.load_state_dict(reference.state_dict(), strict=False)
    assert isinstance(c4.body.body.layer4, nn.Identity)  # after the deepest used map (layer3)
    assert not any(k.startswith("body.layer4.") for k in c4.body.state_dict())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(c4.eval().taps(x)["layer3"], reference.features(x)["layer3"])
    fpn = build_backbone("resnet18", fpn=True)
    assert not isinstance(fpn.body.body.layer4, nn.Identity)

    mobile = build_backbone("mobilenet_v3_large", fpn=True)  # classifier (960 -> 1280) is gone
    assert not any(k.startswith("body.classifier.") for k in mobile.body.state_dict())


# -- freezing -----------------------------------------------------------------------------------
def test_trainable_layers_freeze_stages_like_torchvision() -> None:
    bb = build_backbone("resnet18", trainable_layers=3)  # stem, layer1 frozen
    frozen = {n for n, p in bb.body.named_parameters() if not p.requires_grad}
    expected = {n for n, _ in bb.body.named_parameters()
                if n.startswith(("body.conv1.", "body.bn1.", "body.layer1."))}
    assert frozen == expected and frozen
    assert all(p.requires_grad for p in bb.fpn.parameters())
    assert not any(p.requires_grad for p in build_backbone("resnet18", trainable_layers=0).body.parameters())
    assert all(p.requires_grad for p in build_backbone("resnet18", trainable_layers=5).body.parameters())
    with pytest.raises(ValueError, match=r"trainable_layers must be in \[0, 5\].*got 6"):
        build_backbone("resnet18", trainable_layers=6)
    with pytest.raises(ValueError, match=r"\[0, 4\]"):  # C4: stages up to layer3
        build_backbone("resnet18", fpn=False, trainable_layers=5)


def test_freeze_batchnorm_matches_eval_batchnorm() -> None:
    torch.manual_seed(0)
    model = tvm.resnet18(num_classes=4)
    _randomize(model)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = model.eval()(x)
        frozen = freeze_batchnorm(model).train()
        got = frozen(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in frozen.modules())
    assert sum(isinstance(m, FrozenBatchNorm2d) for m in frozen.modules()) == 20
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_frozen_batchnorm_keeps_the_input_dtype_under_autocast() -> None:
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(8)
    _randomize(bn)
    frozen, reference = freeze_batchnorm(bn), FrozenBatchNorm2d(8, eps=bn.eps)
    reference.load_state_dict(frozen.state_dict())
    x = torch.randn(2, 8, 5, 5, requires_grad=True)
    torch.testing.assert_close(frozen(x), reference(x), rtol=1e-6, atol=1e-6)
    assert reference(x.bfloat16()).dtype == torch.float32  # torchvision's promotes to its buffers' dtype
    y = frozen(x.bfloat16())
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), reference(x), rtol=2e-2, atol=2e-2)
    y.float().sum().backward()
    assert x.grad.dtype == torch.float32 and torch.isfinite(x.grad).all()


# -- weights ------------------------------------------------------------------------------------
def test_backbone_init_from_classify_checkpoint(tmp_path) -> None:
    classifier = get_model("resnet18", num_classes=10)
    _randomize(classifier, seed=3)
    path = save_checkpoint(tmp_path / "cls.pt", classifier.state_dict(), config={"model": "resnet18"},
                           class_names=[str(i) for i in range(10)])
    bb = build_backbone("resnet18", weights=path)
    saved = classifier.state_dict()
    loaded = bb.body.state_dict()
    assert loaded and all(torch.equal(v, saved[k]) for k, v in loaded.items())
    assert len(loaded) == len([k for k in saved if not k.startswith("body.fc.")])
    with pytest.raises(ValueError,
                       match="checkpoint of classifier 'resnet18' cannot initialise backbone 'resnet34'"):
        build_backbone("resnet34", weights=path)


def test_backbone_init_from_torchvision_state_dict(tmp_path) -> None:
    tv = tvm.resnet18()
    _randomize(tv, seed=5)
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    bb = build_backbone("resnet18", weights=tmp_path / "tv.pth", frozen_bn=True)
    assert torch.equal(bb.body.body.layer2[0].conv1.weight, tv.layer2[0].conv1.weight)
    frozen_bn = bb.body.body.layer3[1].bn2
    assert isinstance(frozen_bn, FrozenBatchNorm2d)
    assert torch.equal(frozen_bn.running_var, tv.layer3[1].bn2.running_var)


# -- anchors ------------------------------------------------------------------------------------
def test_anchor_sizes_from_strides() -> None:
    info = [FeatureInfo(str(s), 256, s) for s in (4, 8, 16, 32, 64)]
    assert anchor_sizes_for(info) == ((32,), (64,), (128,), (256,), (512,))  # torchvision's
    assert anchor_sizes_for([FeatureInfo("c4", 256, 16)], scales=(0.25, 0.5, 1, 2, 4)) == (
        (32, 64, 128, 256, 512),)
    assert anchor_sizes_for(info[:2], base=4, scales=(2, 1)) == ((16, 32), (32, 64))
    with pytest.raises(ValueError, match="positive"):
        anchor_sizes_for(info, base=0)


def test_fit_anchor_sizes_uses_box_size_quantiles() -> None:
    sides = torch.tensor([10.0, 20, 40, 80])
    boxes = torch.stack([torch.zeros(4), torch.zeros(4), sides, sides], dim=1)
    # quantiles of sqrt(area) at probabilities 0.25 and 0.75 (linear interpolation): 17.5, 50
    assert fit_anchor_sizes(boxes, num_levels=2) == ((18,), (50,))
    assert fit_anchor_sizes([boxes[:2], boxes[2:]], num_levels=1, sizes_per_level=4) == (
        (14, 22, 38, 65),)  # probabilities 1/8 .. 7/8: 13.75, 22.5, 37.5, 65 (round half even)
    same = torch.tensor([[0.0, 0, 10, 10]] * 5)
    assert fit_anchor_sizes(same, num_levels=3) == ((10,), (11,), (12,))  # made increasing
    with pytest.raises(ValueError, match=r"Tensor\[N, 4\]"):
        fit_anchor_sizes(torch.zeros(3, 5), num_levels=2)
    with pytest.raises(ValueError, match="no box with positive area"):
        fit_anchor_sizes(torch.zeros(0, 4), num_levels=2)


def test_normalize_anchor_sizes_checks_levels() -> None:
    info = [FeatureInfo("p3", 256, 8), FeatureInfo("p4", 256, 16)]
    assert normalize_anchor_sizes((24, 48), info) == ((24,), (48,))
    with pytest.raises(ValueError, match=r"2 levels \[p3 \(stride 8\), p4 \(stride 16\)\], got 3"):
        normalize_anchor_sizes((1, 2, 3), info)
    with pytest.raises(ValueError, match="same number"):
        normalize_anchor_sizes(((8, 16), (32,)), info)


def test_best_anchor_iou_matches_a_brute_force_grid() -> None:
    from torchvision.ops import box_iou

    from detect.models.anchors import best_anchor_iou

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(40, 2, generator=g) * 100
    boxes = torch.cat([xy, xy + 8 + torch.rand(40, 2, generator=g) * 60], dim=1)
    sizes, ratios, strides = ((16, 24), (48, 64)), (0.5, 1.0, 2.0), (8, 32)
    grid = []
    for level, stride in zip(sizes, strides):
        for cy in range(0, 128, stride):
            for cx in range(0, 160, stride):
                for size in level:
                    for r in ratios:
                        half_h, half_w = round(size * r ** 0.5 / 2), round(size / r ** 0.5 / 2)
                        grid.append([cx - half_w, cy - half_h, cx + half_w, cy + half_h])
    expected = box_iou(boxes, torch.tensor(grid)).amax(dim=1)
    got = best_anchor_iou(boxes, sizes, ratios, strides, (128, 160), chunk=7)
    assert torch.allclose(got, expected, atol=1e-6)
    assert best_anchor_iou(torch.zeros(0, 4), sizes, ratios, strides, (128, 160)).shape == (0,)
    with pytest.raises(ValueError, match="one stride per level"):
        best_anchor_iou(boxes, sizes, ratios, (8,), (128, 160))


def test_the_recipe_anchors_are_four_strides_at_three_scales() -> None:
    from classify.base.config import load_config
    from detect.engine.config import DetectTrainConfig
    from detect.tasks.recipe import RECIPE_PRESET

    levels = [FeatureInfo(f"p{i}", 128, 2 ** i) for i in range(2, 7)]
    sizes = anchor_sizes_for(levels, base=4, scales=(2 ** (-1 / 3), 1, 2 ** (1 / 3)))
    recipe = load_config(DetectTrainConfig, RECIPE_PRESET, {})
    assert sizes == tuple(tuple(level) for level in recipe.detector_kwargs["anchor_sizes"])
