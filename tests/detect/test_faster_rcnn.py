"""Faster R-CNN on every usable zoo backbone: build, train step, eval format, target checks, weights."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.ops import box_iou

from classify import get_model, get_model_entry
from classify.base.checkpoint import save_checkpoint
from detect.models.anchors import fit_anchor_sizes
from detect.models.backbone import KeepDtypeFrozenBatchNorm2d, usable_backbones
from detect.models.rcnn.faster_rcnn import FasterRCNN, faster_rcnn, merge_detections
from detect.models.rcnn.tv_variants import build_from_config
from detect.models.registry import detector_entry, get_detector, list_detectors

LOSS_KEYS = {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
#: small RPN / RoI settings so that a train step on tiny images stays cheap
SMALL = dict(rpn_batch_size_per_image=32, box_batch_size_per_image=16, rpn_pre_nms_top_n_train=64,
             rpn_post_nms_top_n_train=32, rpn_pre_nms_top_n_test=32, rpn_post_nms_top_n_test=16,
             representation_size=32, out_channels=32, box_score_thresh=0.0)
HEAVY = ("alexnet", "zfnet", "vgg", "inception", "densenet201", "resnet152", "convnext")
NUM_CLASSES = 3


def _cases() -> list:
    cases = []
    for name in usable_backbones():
        marks = [pytest.mark.slow] if name.startswith(HEAVY) else []
        cases += [pytest.param(name, fpn, marks=marks, id=f"{name}-{'fpn' if fpn else 'c4'}")
                  for fpn in (True, False)]
    return cases


def _images(size: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.rand(3, size, size + 8, generator=g), torch.rand(3, size + 16, size, generator=g)]


def _targets() -> list[dict[str, torch.Tensor]]:
    return [
        {"boxes": torch.tensor([[2.0, 3.0, 30.0, 40.0]]), "labels": torch.tensor([1]),
         "image_id": torch.tensor(7)},
        {"boxes": torch.tensor([[10.0, 10.0, 50.0, 40.0], [0.0, 0.0, 20.0, 20.0]]),
         "labels": torch.tensor([0, 2]), "image_id": torch.tensor(8)},
    ]


def _small(backbone: str = "resnet18", fpn: bool = True, size: int = 64, **kw) -> FasterRCNN:
    torch.manual_seed(0)
    return get_detector("faster_rcnn", backbone=backbone, fpn=fpn, num_classes=NUM_CLASSES,
                        image_size=size, **{**SMALL, **kw})


@pytest.mark.parametrize(("backbone", "fpn"), _cases())
def test_every_backbone_trains_and_predicts(backbone: str, fpn: bool) -> None:
    size = max(64, get_model_entry(backbone).min_input_size)
    model = _small(backbone, fpn, size)
    images = _images(size)
    losses = model.train()(images, _targets())
    assert set(losses) == LOSS_KEYS
    assert all(math.isfinite(v.item()) for v in losses.values())
    sum(losses.values()).backward()
    head = model.roi_heads.box_predictor.cls_score.weight
    assert head.grad is not None and torch.isfinite(head.grad).all()

    with torch.no_grad():
        outputs = model.eval()(images)
    assert len(outputs) == 2
    for image, out in zip(images, outputs):
        assert set(out) == {"boxes", "scores", "labels"}
        n = len(out["scores"])
        assert out["boxes"].shape == (n, 4) and out["labels"].shape == (n,)
        assert out["boxes"].dtype == torch.float32 and out["labels"].dtype == torch.int64
        h, w = image.shape[1:]
        boxes = out["boxes"]
        assert (boxes >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
        assert (boxes[:, :2] <= boxes[:, 2:]).all()
        assert ((out["labels"] >= 0) & (out["labels"] < NUM_CLASSES)).all()


# -- anchors and levels follow feature_info -----------------------------------------------------
@pytest.mark.parametrize(("backbone", "strides"), [
    ("resnet18", [4, 8, 16, 32, 64]), ("mobilenet_v3_large", [4, 8, 16, 32, 64])])
def test_fpn_anchors_follow_strides(backbone: str, strides: list[int]) -> None:
    model = _small(backbone)
    assert [f.stride for f in model.backbone.feature_info] == strides
    assert model.rpn.anchor_generator.sizes == tuple((8 * s,) for s in strides)
    assert model.rpn.anchor_generator.aspect_ratios == ((0.5, 1.0, 2.0),) * 5
    assert model.rpn.head.cls_logits.out_channels == 3
    pooled = model.roi_heads.box_roi_pool.featmap_names
    assert pooled == [f.name for f in model.backbone.feature_info[:-1]]  # not the "pool" map
    images = model.transform(_images(64))[0]
    feats = model.backbone(images.tensors)
    anchors = model.rpn.anchor_generator(images, list(feats.values()))
    cells = sum(f.shape[-2] * f.shape[-1] for f in feats.values())
    assert anchors[0].shape == (cells * 3, 4)


def test_c4_anchors_several_sizes_on_one_level() -> None:
    model = _small("mobilenet_v3_large", fpn=False)
    assert [(f.name, f.stride) for f in model.backbone.feature_info] == [("features.12", 16)]
    assert model.rpn.anchor_generator.sizes == ((32, 64, 128, 256, 512),)
    assert model.rpn.head.cls_logits.out_channels == 15
    assert model.roi_heads.box_roi_pool.featmap_names == ["features.12"]


def test_custom_and_fitted_anchor_sizes() -> None:
    boxes = torch.tensor([[0.0, 0, 8, 8], [0, 0, 16, 16], [0, 0, 24, 24], [0, 0, 40, 40],
                          [0, 0, 64, 64]])
    sizes = fit_anchor_sizes(boxes, num_levels=5)
    model = _small(anchor_sizes=sizes, aspect_ratios=(1.0,))
    # sqrt(area) quantiles at 0.1, 0.3, ..., 0.9: 11.2, 17.6, 24, 36.8, 54.4
    assert model.rpn.anchor_generator.sizes == sizes == ((11,), (18,), (24,), (37,), (54,))
    assert model.rpn.head.cls_logits.out_channels == 1
    with pytest.raises(ValueError, match="one entry per pyramid level, 5 levels"):
        _small(anchor_sizes=(32, 64))


# -- empty and invalid targets ------------------------------------------------------------------
@pytest.mark.parametrize("fpn", [True, False])
def test_images_without_objects_train(fpn: bool) -> None:
    model = _small(fpn=fpn).train()
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}] * 2
    losses = model(_images(64), empty)
    assert losses["loss_box_reg"].item() == 0.0 and losses["loss_rpn_box_reg"].item() == 0.0
    assert all(math.isfinite(v.item()) for v in losses.values())
    assert losses["loss_classifier"].item() > 0 and losses["loss_objectness"].item() > 0
    sum(losses.values()).backward()


def _with(index: int, **changes: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    targets = _targets()
    targets[index] = {**targets[index], **changes}
    return targets


@pytest.mark.parametrize(("targets", "error", "message"), [
    (_with(1, boxes=torch.tensor([[10.0, 10, 50, 40], [30, 0, 20, 20]])), ValueError,
     r"targets\[1\] \(image_id 8\): box 1 \[30.0, 0.0, 20.0, 20.0\] has x2 <= x1"),
    (_with(0, boxes=torch.tensor([[2.0, 40, 30, 40]])), ValueError,
     r"targets\[0\] \(image_id 7\): box 0 .* has y2 <= y1"),
    (_with(1, labels=torch.tensor([0, 3])), ValueError,
     r"targets\[1\] \(image_id 8\): object 1 has label 3, expected 0-based labels in \[0, 2\]"),
    (_with(0, labels=torch.tensor([-1])), ValueError, r"object 0 has label -1"),
    (_with(0, labels=torch.tensor([1.0])), TypeError, r"targets\[0\].*labels must be an int64"),
    (_with(0, boxes=torch.tensor([[2, 3, 30, 40]])), TypeError, r"boxes must be a float Tensor"),
    (_with(0, boxes=torch.tensor([[2.0, 3, 30]])), ValueError, r"boxes must have shape \[N, 4\]"),
    (_with(1, labels=torch.tensor([0])), ValueError, r"labels must have shape \[2\]"),
    ([{"boxes": torch.zeros(0, 4)}] * 2, ValueError,
     r"targets\[0\]: expected a dict with 'boxes' and 'labels'"),
    (_targets()[:1], ValueError, r"expected a list of 2 dicts"),
])
def test_invalid_targets_raise_clear_errors(targets, error, message) -> None:
    model = _small().train()
    with pytest.raises(error, match=message):
        model(_images(64), targets)


def test_invalid_images_and_missing_targets() -> None:
    model = _small()
    with pytest.raises(ValueError, match="needs targets"):
        model.train()(_images(64))
    with pytest.raises(ValueError, match=r"images\[1\]: expected Tensor\[3, H, W\]"):
        model.eval()([torch.rand(3, 32, 32), torch.rand(1, 32, 32)])
    with pytest.raises(TypeError, match="list of Tensor"):
        model.eval()(torch.rand(2, 3, 32, 32))


# -- label boundary, options, registry ----------------------------------------------------------
def test_labels_are_shifted_at_the_torchvision_boundary() -> None:
    model = _small().eval()
    images = _images(64)
    with torch.no_grad():
        ours = model(images)
        theirs = GeneralizedRCNN.forward(model, images)  # torchvision's 1-based labels
    assert sum(len(o["labels"]) for o in ours) > 0
    for a, b in zip(ours, theirs):
        assert torch.equal(a["labels"], b["labels"] - 1) and torch.equal(a["boxes"], b["boxes"])
    assert model.roi_heads.box_predictor.cls_score.out_features == NUM_CLASSES + 1


def test_options_reach_the_parts_and_unknown_options_fail() -> None:
    model = _small(box_detections_per_img=7, box_nms_thresh=0.3, rpn_nms_thresh=0.6,
                   box_batch_size_per_image=8, representation_size=16, box_head="conv",
                   rpn_conv_depth=2, fpn_norm="bn", image_mean=(0.5, 0.5, 0.5),
                   roi_canonical_scale=56, roi_canonical_level=3)
    heads = model.roi_heads
    assert (heads.box_roi_pool.canonical_scale, heads.box_roi_pool.canonical_level) == (56, 3)
    assert (heads.detections_per_img, heads.nms_thresh) == (7, 0.3)
    assert heads.fg_bg_sampler.batch_size_per_image == 8
    assert heads.box_predictor.cls_score.in_features == 16 and len(model.rpn.head.conv) == 2
    assert model.rpn.nms_thresh == 0.6 and model.transform.image_mean == [0.5, 0.5, 0.5]
    assert (model.transform.min_size, model.transform.max_size) == ((64,), 64)
    assert model.config["backbone"] == "resnet18" and model.config["box_detections_per_img"] == 7
    with pytest.raises(ValueError,
                       match="unknown option 'box_detections_per_image'.*'box_detections_per_img'"):
        _small(box_detections_per_image=5)
    with pytest.raises(ValueError, match="box_head must be one of"):
        _small(box_head="res5")


def test_test_size_resizes_in_eval_mode_only() -> None:
    model = _small(test_size=96)
    images = [torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))]
    assert model.transform(images)[0].image_sizes == [(64, 64)]
    model.eval()
    assert model.transform(images)[0].image_sizes == [(96, 96)]
    with torch.no_grad():
        boxes = torch.cat([o["boxes"] for o in model(images)])
    assert boxes.numel() and boxes.max() <= 64  # mapped back to the input images
    model.train()
    assert (model.transform.min_size, model.transform.max_size) == ((64,), 64)
    assert model.config["test_size"] == 96
    with pytest.raises(ValueError, match="test_size must be at least 32 pixels, got 8"):
        _small(test_size=8)


def _merged(runs: list[dict], iou: float, max_detections: int) -> dict:
    """merge_detections of single-size outputs as the model does it: on torchvision's 1-based
    labels (the same inputs give the same NMS ties), then back to 0-based."""
    merged = merge_detections([dict(r, labels=r["labels"] + 1) for r in runs], iou, max_detections)
    return dict(merged, labels=merged["labels"] - 1)


def test_extra_test_sizes_merge_every_size_by_per_class_nms() -> None:
    options = dict(test_size=96, box_score_thresh=0.0, box_detections_per_img=30)
    multi = _small(extra_test_sizes=[64, 48], **options).eval()
    singles = [_small(**{**options, "test_size": size}).eval() for size in (96, 64, 48)]
    for single in singles:
        single.load_state_dict(multi.state_dict())
    images = [torch.rand(3, 64, 80, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    with torch.no_grad():
        merged = multi(images)
        runs = [single(images) for single in singles]
    for i, out in enumerate(merged):
        expected = _merged([run[i] for run in runs], 0.5, 30)
        assert out["boxes"].shape[0] == expected["boxes"].shape[0] > 0
        for key in ("boxes", "scores", "labels"):
            torch.testing.assert_close(out[key], expected[key])
        assert out["boxes"][:, 2].max() <= 80 and out["boxes"][:, 3].max() <= 64  # the input's pixels
    assert multi.config["extra_test_sizes"] == [64, 48]
    with pytest.raises(ValueError, match="extra_test_sizes must be a list of square input sides of at least 32"):
        _small(extra_test_sizes=[16])


def test_a_checkpoint_loaded_at_several_sizes_runs_the_multi_size_test(tmp_path) -> None:
    from detect.models.loading import load_detector

    trained = _small(test_size=96)
    config = {"detector": "faster_rcnn", "image_size": 64,
              "detector_kwargs": {"backbone": "resnet18", **SMALL, "test_size": 96}}
    path = save_checkpoint(tmp_path / "best.pt", trained.state_dict(), config=config,
                           class_names=[f"c{i}" for i in range(NUM_CLASSES)])
    multi, _ = load_detector(path, image_size=[80, 48])
    singles = [load_detector(path, image_size=size)[0] for size in (80, 48)]
    assert multi.transform.test_size is None and multi.transform.extra_test_sizes == (48,)
    assert singles[0].transform.extra_test_sizes == () and load_detector(path)[0].transform.test_size == 96
    images = [torch.rand(3, 64, 80, generator=torch.Generator().manual_seed(0))]
    with torch.no_grad():
        (out,), runs = multi(images), [single(images)[0] for single in singles]
    expected = _merged(runs, 0.5, 100)
    assert out["boxes"].shape[0] == expected["boxes"].shape[0] > 0
    for key in ("boxes", "scores"):
        torch.testing.assert_close(out[key], expected[key])
    assert torch.equal(out["labels"], expected["labels"])


def test_roi_pool_scales_come_from_the_declared_strides_not_the_first_input() -> None:
    model = _small(test_size=48, box_score_thresh=0.0).eval()
    pool = model.roi_heads.box_roi_pool
    assert pool.scales == [1 / f.stride for f in model.backbone.levels] == [1 / 4, 1 / 8, 1 / 16, 1 / 32]
    with torch.no_grad():
        model([torch.rand(3, 64, 80)])  # 38 x 48 px padded to 64 x 64: torchvision would infer stride 2
    assert pool.scales == [1 / 4, 1 / 8, 1 / 16, 1 / 32]
    assert (pool.map_levels.k_min, pool.map_levels.k_max) == (2, 5)


def test_merge_detections_keeps_the_best_box_of_each_overlapping_same_class_group() -> None:
    g = torch.Generator().manual_seed(0)
    runs = []
    for _ in range(3):
        xy = torch.rand(40, 2, generator=g) * 60
        boxes = torch.cat([xy, xy + 5 + torch.rand(40, 2, generator=g) * 30], 1)
        runs.append({"boxes": boxes, "scores": torch.rand(40, generator=g),
                     "labels": torch.randint(0, 3, (40,), generator=g)})
    out = merge_detections(runs, 0.5, 50)
    assert len(out["scores"]) == 50 and torch.all(out["scores"][:-1] >= out["scores"][1:])
    everything = {(tuple(b.tolist()), float(s)) for r in runs for b, s in zip(r["boxes"], r["scores"])}
    assert all((tuple(b.tolist()), float(s)) in everything for b, s in zip(out["boxes"], out["scores"]))
    for label in out["labels"].unique():
        same = out["boxes"][out["labels"] == label]
        iou = box_iou(same, same).fill_diagonal_(0)
        assert iou.max() <= 0.5  # no two kept boxes of one class overlap beyond the NMS threshold
    # the best box of all runs is always kept
    best = max(((float(s), r) for r in runs for s in r["scores"]), key=lambda t: t[0])[0]
    assert float(out["scores"][0]) == best


def test_normalisation_comes_from_the_backbone_entry() -> None:
    model = _small("efficientnet_lite0")
    entry = get_model_entry("efficientnet_lite0")
    assert model.transform.image_mean == list(entry.mean) == [0.5, 0.5, 0.5]
    assert model.transform.image_std == list(entry.std)


def test_registry_entries() -> None:
    names = list_detectors()
    for name in ("faster_rcnn", "faster_rcnn_resnet50_fpn", "faster_rcnn_resnet50_fpn_v2",
                 "faster_rcnn_mobilenet_v3_large_fpn", "faster_rcnn_mobilenet_v3_large_320_fpn"):
        assert name in names and detector_entry(name).family == "faster_rcnn"
        assert not detector_entry(name).peer
    assert detector_entry("faster_rcnn_mobilenet_v3_large_320_fpn").backbone == "mobilenet_v3_large-fpn"


# -- weights ------------------------------------------------------------------------------------
def test_detector_checkpoint_round_trip(tmp_path) -> None:
    model = _small().eval()
    path = save_checkpoint(tmp_path / "det.pt", model.state_dict(), config=model.config,
                           class_names=["a", "b", "c"])
    loaded = get_detector("faster_rcnn", backbone="resnet18", weights=path, image_size=64,
                          **SMALL).eval()
    assert loaded.num_classes == 3 and loaded.class_names == ["a", "b", "c"]
    images = _images(64)
    with torch.no_grad():
        for a, b in zip(model(images), loaded(images)):
            assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["scores"], b["scores"])

    finetune = get_detector("faster_rcnn", backbone="resnet18", weights=path, num_classes=5,
                            image_size=64, **SMALL)
    assert finetune.class_names is None and finetune.roi_heads.box_predictor.cls_score.out_features == 6
    assert torch.equal(finetune.rpn.head.conv[0][0].weight, model.rpn.head.conv[0][0].weight)

    with pytest.raises(ValueError, match=r"weights do not fit.*missing keys"):
        get_detector("faster_rcnn", backbone="resnet18", fpn=False, weights=path, **SMALL)
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        get_detector("faster_rcnn", weights=tmp_path / "nothing.pt")


def test_backbone_weights_freeze_like_torchvision(tmp_path) -> None:
    classifier = get_model("resnet18", num_classes=10)
    path = save_checkpoint(tmp_path / "cls.pt", classifier.state_dict(), config={"model": "resnet18"})
    model = faster_rcnn("resnet18", num_classes=2, backbone_weights=path, image_size=64, **SMALL)
    body = model.backbone.body.body
    assert torch.equal(body.layer3[0].conv1.weight, classifier.body.layer3[0].conv1.weight)
    assert type(body.bn1) is KeepDtypeFrozenBatchNorm2d  # frozen_bn defaults to True here
    assert not body.conv1.weight.requires_grad and not body.layer1[0].conv1.weight.requires_grad
    assert body.layer2[0].conv1.weight.requires_grad  # trainable_layers defaults to 3
    assert model.config["trainable_layers"] == 3


@pytest.mark.parametrize(("name", "kwargs"), [
    ("faster_rcnn", dict(backbone="mobilenet_v3_small", fpn=False, num_classes=4, image_size=64,
                         anchor_sizes=((16, 32, 64),), **SMALL)),
    ("faster_rcnn_mobilenet_v3_large_320_fpn", dict(num_classes=2, rpn_post_nms_top_n_test=50)),
])
def test_config_is_plain_and_rebuilds_the_architecture(name: str, kwargs: dict) -> None:
    model = get_detector(name, **kwargs)
    config = json.loads(json.dumps(model.config))  # plain JSON / YAML values only
    rebuilt = build_from_config(config)
    assert rebuilt.config == model.config
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()}


def test_under_bfloat16_autocast_the_heads_return_float32_and_boxes_match_float32() -> None:
    """torchvision decodes boxes in the deltas' dtype: bfloat16 anchors would be rounded to 2 px."""
    model = _small()
    images = [torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(1))]
    targets = [{"boxes": torch.tensor([[10.0, 12.0, 30.0, 50.0]]), "labels": torch.tensor([1])}]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        objectness, deltas = model.rpn.head([torch.rand(1, 32, 8, 8)])
        scores, box_deltas = model.roi_heads.box_predictor(torch.rand(4, 32))
        losses = model(images, targets)
    assert {t.dtype for t in (*objectness, *deltas, scores, box_deltas)} == {torch.float32}
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        reference = model(images)[0]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = model(images)[0]
    assert mixed["boxes"].dtype == torch.float32 and mixed["boxes"].shape[0] > 0
    # bfloat16 features move the boxes a little; rounded anchors would move them by whole pixels
    matched = box_iou(mixed["boxes"][:10], reference["boxes"]).amax(dim=1)
    assert matched.min() > 0.9
