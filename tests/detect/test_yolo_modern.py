"""The anchor-free YOLO (``yolo_af``): task-aligned assignment on hand-made cases, the DFL encoding and
decoding, the losses' weighting against hand computations, the network's eval contract, an overfit
check, ``fit`` + ``load_detector``, and bad options."""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import complete_box_iou_loss

from classify.models.features import Backbone, FeatureInfo
from detect.box_ops import box_iou
from detect.data.build import build_digit_scenes
from detect.data.scene_config import scene_config
from detect.engine.config import DetectTrainConfig
from detect.engine.trainer import fit
from detect.models.loading import load_detector
from detect.models.registry import detector_entry, get_detector
from detect.models.yolo.assign import TaskAlignedAssigner, points_in_boxes
from detect.models.yolo.base import YoloDetector
from detect.models.yolo.modern import anchor_points, dfl_decode, distances_to_boxes
from detect.models.yolo.modern_loss import (
    AnchorFreeLoss,
    HeadOutput,
    box_to_distances,
    dfl_target_bins,
    distribution_focal_loss,
)

# a row of 8 points of stride 8 at y = 4: x = 4, 12, .., 60
ROW = torch.stack((torch.arange(8) * 8.0 + 4, torch.full((8,), 4.0)), dim=1)


def _boxes_around(points: Tensor, half: float = 3.0) -> Tensor:
    """A ``2 * half`` square box predicted around each point (xyxy)."""
    return torch.cat((points - half, points + half), dim=1)


def _target(boxes: list[list[float]], labels: list[int]) -> dict[str, Tensor]:
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64)}


# ----------------------------------------------------------------------------- assignment


def test_points_inside_boxes_are_the_candidates() -> None:
    inside = points_in_boxes(ROW, torch.tensor([[0.0, 0, 20, 8], [30, 0, 50, 8], [12, 0, 20, 8]]))
    assert inside.int().tolist() == [[1, 1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 0, 0],
                                     [0, 0, 0, 0, 0, 0, 0, 0]]  # on the edge (x = 12) is not inside


def test_assignment_picks_the_points_inside_each_box_with_tood_soft_targets() -> None:
    gts = torch.tensor([[0.0, 0, 20, 8], [30, 0, 50, 8]])
    boxes = _boxes_around(ROW)
    boxes[0] = gts[0]  # point 0 predicts gt 0 exactly: IoU 1
    boxes[1] = torch.tensor([0.0, 0, 10, 8])  # point 1: IoU 0.5 with gt 0
    boxes[4] = gts[1]  # point 4: IoU 1 with gt 1 ...
    boxes[5] = torch.tensor([30.0, 0, 45, 8])  # point 5: IoU 0.75
    scores = torch.full((8, 3), 0.5)
    scores[:, 2] = torch.linspace(0.1, 0.8, 8)
    a = TaskAlignedAssigner(topk=10)(scores, boxes, ROW, gts, torch.tensor([1, 2]))
    assert a.foreground.tolist() == [True, True, False, False, True, True, False, False]
    assert a.gt_index.tolist() == [0, 0, -1, -1, 1, 1, -1, -1]
    assert a.labels.tolist() == [1, 1, -1, -1, 2, 2, -1, -1]
    torch.testing.assert_close(a.boxes[[0, 1]], gts[[0, 0]])
    torch.testing.assert_close(a.boxes[[4, 5]], gts[[1, 1]])
    assert a.boxes[[2, 3, 6, 7]].abs().sum() == 0 and a.scores[[2, 3, 6, 7]].abs().sum() == 0
    # t = s * u^6, normalised to t / max t * max u (max u = 1 for both)
    s4, s5 = 0.1 + 0.1 * 4, 0.1 + 0.1 * 5
    t4, t5 = s4 * 1.0, s5 * 0.75**6
    expected = torch.zeros(8, 3)
    expected[0, 1], expected[1, 1] = 1.0, 0.5**6
    expected[4, 2], expected[5, 2] = 1.0, t5 / max(t4, t5)
    torch.testing.assert_close(a.scores, expected)


def test_a_point_claimed_by_two_boxes_goes_to_the_higher_iou() -> None:
    gts = torch.tensor([[0.0, 0, 40, 8], [8, 0, 48, 8]])  # x = 4..36 inside gt 0, x = 12..44 inside gt 1
    boxes = _boxes_around(ROW)
    boxes[1] = torch.tensor([0.0, 0, 36, 8])  # x = 12: IoU 36 / 40 with gt 0, 28 / 48 with gt 1
    boxes[2] = torch.tensor([10.0, 0, 48, 8])  # x = 20: IoU 30 / 48 with gt 0, 38 / 40 with gt 1
    ious = box_iou(gts, boxes[[1, 2]])
    assert ious[0, 0] > ious[1, 0] and ious[1, 1] > ious[0, 1]
    scores = torch.full((8, 2), 0.3)
    a = TaskAlignedAssigner(topk=10)(scores, boxes, ROW, gts, torch.tensor([0, 1]))
    assert a.foreground.tolist() == [True] * 6 + [False] * 2
    assert a.gt_index[0] == 0 and a.gt_index[5] == 1  # inside one box only
    assert a.gt_index[1] == 0 and a.gt_index[2] == 1
    assert a.labels[1] == 0 and a.labels[2] == 1
    assert (a.scores > 0).sum(dim=1).tolist() == [1] * 6 + [0] * 2  # one class a positive


def test_topk_limits_the_positives_to_the_best_aligned() -> None:
    points, _ = anchor_points([(8, 8)], [8])  # 64 points, all inside the gt below
    gt = torch.tensor([[0.0, 0, 64, 64]])
    boxes = _boxes_around(points, 10.0)
    scores = torch.rand(64, 1, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.1
    a = TaskAlignedAssigner(topk=3)(scores, boxes, points, gt, torch.tensor([0]))
    ious = box_iou(gt, boxes)[0]
    metric = scores[:, 0] * ious**6
    assert a.foreground.sum() == 3
    assert set(a.foreground.nonzero().squeeze(1).tolist()) == set(metric.topk(3).indices.tolist())
    chosen = a.foreground.nonzero().squeeze(1)
    expected = metric[chosen] / metric[chosen].max() * ious[chosen].max()  # TOOD's normalisation
    torch.testing.assert_close(a.scores[chosen, 0], expected)


def test_no_ground_truth_means_every_point_is_a_negative() -> None:
    a = TaskAlignedAssigner()(torch.rand(8, 4), _boxes_around(ROW), ROW, torch.zeros(0, 4),
                              torch.zeros(0, dtype=torch.int64))
    assert not a.foreground.any() and a.scores.shape == (8, 4) and a.scores.sum() == 0
    assert a.gt_index.tolist() == [-1] * 8 and a.boxes.shape == (8, 4)


# ----------------------------------------------------------------------------- DFL encode / decode


def test_dfl_two_bin_targets_decode_back_to_the_distance() -> None:
    reg_max = 16
    distances = torch.rand(500, generator=torch.Generator().manual_seed(0)) * (reg_max - 1 - 0.01)
    left, right, w_left, w_right = dfl_target_bins(distances, reg_max)
    torch.testing.assert_close(w_left + w_right, torch.ones(500))
    assert (w_left >= 0).all() and (w_right >= 0).all() and (right == left + 1).all() and right.max() <= reg_max - 1
    probs = torch.zeros(500, reg_max)
    probs.scatter_(1, left[:, None], w_left[:, None])
    probs.scatter_add_(1, right[:, None], w_right[:, None])
    torch.testing.assert_close(dfl_decode(probs.log()), distances, atol=1e-5, rtol=0)
    # out-of-range distances are clamped into the bins
    left, right, w_left, _ = dfl_target_bins(torch.tensor([-2.0, 40.0]), reg_max)
    assert left.tolist() == [0, 14] and right.tolist() == [1, 15] and w_left.tolist() == pytest.approx([1.0, 0.01], abs=1e-6)


def test_boxes_and_distances_round_trip() -> None:
    g = torch.Generator().manual_seed(1)
    points = torch.rand(100, 2, generator=g) * 300
    strides = torch.tensor([8.0, 16.0, 32.0])[torch.randint(0, 3, (100,), generator=g)]
    distances = torch.rand(100, 4, generator=g) * 15
    boxes = distances_to_boxes(points, distances, strides)
    assert ((boxes[:, 2:] - boxes[:, :2]) >= 0).all()
    torch.testing.assert_close(box_to_distances(points, boxes, strides), distances, atol=1e-4, rtol=0)


def test_decode_of_hand_made_distributions() -> None:
    logits = torch.full((4, 16), -1e4)
    logits[0, 3] = 0.0  # all mass on bin 3
    logits[1, [2, 3]] = 0.0  # half on 2, half on 3
    logits[2] = 0.0  # uniform: 7.5
    logits[3, 15] = 0.0
    torch.testing.assert_close(dfl_decode(logits), torch.tensor([3.0, 2.5, 7.5, 15.0]))


def test_the_eval_output_decodes_points_and_distributions_to_cxcywh() -> None:
    """A head stub: 2x2 + 1x1 + 1x1 maps (strides 8, 16, 32) with known distributions."""
    torch.manual_seed(0)
    model = get_detector("yolo_af", num_classes=2, image_size=64, width=8, reg_max=4)
    box = torch.full((1, 4, 4, 6), -1e4)
    sides = torch.tensor([[1, 0, 2, 3, 0, 1], [1, 1, 0, 3, 2, 0], [2, 0, 1, 3, 1, 1], [2, 1, 0, 3, 0, 2]])
    box.scatter_(2, sides[None, :, None, :], 0.0)  # point a: (left, top, right, bottom) = sides[:, a] bins
    cls = torch.linspace(-3, 3, 12).reshape(1, 2, 6)

    class Stub(nn.Module):
        def forward(self, maps: list[Tensor]) -> tuple[Tensor, Tensor, list[tuple[int, int]]]:
            return box, cls, [(2, 2), (1, 1), (1, 1)]

    model.net.head = Stub()
    with torch.no_grad():
        out = model.net.eval()(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 2 + 4, 6)
    points = torch.tensor([[4.0, 4], [12, 4], [4, 12], [12, 12], [8, 8], [16, 16]])
    strides = torch.tensor([8.0, 8, 8, 8, 16, 32])
    xyxy = torch.cat((points - sides[:2].T * strides[:, None], points + sides[2:].T * strides[:, None]), dim=1)
    cxcywh = torch.cat(((xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]), dim=1)
    torch.testing.assert_close(out[0, :4].T, cxcywh)
    torch.testing.assert_close(out[0, 4:], cls[0].sigmoid())


# ----------------------------------------------------------------------------- the losses


def _hand_output(box_logits: Tensor, cls_logits: Tensor, boxes: Tensor, points: Tensor) -> HeadOutput:
    return HeadOutput(box_logits[None], cls_logits[None], boxes[None], points, torch.full((len(points),), 8.0))


def test_losses_match_a_hand_computation() -> None:
    """Two points inside one box: point 0 predicts it exactly (soft target 1), point 1 with IoU u
    (soft target u^6); the others are negatives."""
    gt = torch.tensor([[2.0, 0, 22, 8]])  # contains x = 4, 12, 20
    boxes = _boxes_around(ROW, 1.0)
    boxes[0] = gt[0]
    boxes[1] = torch.tensor([4.0, 0, 22, 8])  # IoU 0.9
    g = torch.Generator().manual_seed(0)
    cls_logits = torch.randn(8, 2, generator=g)
    cls_logits[:, 1] = 0.0  # equal scores of class 1 at every point: the metric ranks by IoU
    box_logits = torch.randn(8, 4, 16, generator=g)
    raw = _hand_output(box_logits, cls_logits, boxes, ROW)
    losses = AnchorFreeLoss(2, topk=2)(raw, [_target([[2.0, 0, 22, 8]], [1])])
    u = 0.9
    soft = torch.zeros(8, 2)
    soft[0, 1], soft[1, 1] = 1.0, u**6
    total = soft.sum()
    bce = -(soft * F.logsigmoid(cls_logits) + (1 - soft) * F.logsigmoid(-cls_logits)).sum()
    assert losses["loss_cls"].item() == pytest.approx(0.5 * bce.item() / total.item(), rel=1e-5)
    ciou = complete_box_iou_loss(boxes[:2], gt.expand(2, 4))
    assert ciou[0] == pytest.approx(0.0, abs=1e-6) and ciou[1] > 0.05
    assert losses["loss_box"].item() == pytest.approx(7.5 * (ciou[1] * u**6).item() / total.item(), rel=1e-5)
    dfl = []
    for a in (0, 1):  # the target distances in strides: (x - 2, 0 - y... clamped) from point a
        target = torch.tensor([ROW[a, 0] - 2, ROW[a, 1] - 0, 22 - ROW[a, 0], 8 - ROW[a, 1]]) / 8
        logp = box_logits[a].log_softmax(-1)
        sides = [-((math.floor(d) + 1 - d) * logp[s, math.floor(d)] + (d - math.floor(d)) * logp[s, math.floor(d) + 1])
                 for s, d in enumerate(target.tolist())]
        dfl.append(sum(sides) / 4)
    expected = (dfl[0] * 1.0 + dfl[1] * u**6) / total
    assert losses["loss_dfl"].item() == pytest.approx(1.5 * expected.item(), rel=1e-5)
    assert distribution_focal_loss(box_logits[0], torch.tensor([0.25, 0.5, 2.25, 0.5])).mean() == \
        pytest.approx(dfl[0].item(), rel=1e-6)


def test_empty_targets_give_zero_box_and_dfl_losses_and_a_finite_class_loss() -> None:
    torch.manual_seed(0)
    model = get_detector("yolo_af", num_classes=3, image_size=64, width=8).train()
    images = [torch.rand(3, 64, 48), torch.rand(3, 50, 64)]
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    losses = model(images, [empty, dict(empty)])
    assert set(losses) == {"loss_box", "loss_cls", "loss_dfl"}
    assert losses["loss_box"].item() == 0.0 and losses["loss_dfl"].item() == 0.0
    # all negatives at the prior 0.01: BCE ~ -log(0.99) for each of the 2 x 84 points x 3 classes, T = 1
    assert losses["loss_cls"].item() == pytest.approx(0.5 * 2 * 84 * 3 * -math.log(0.99), rel=0.2)
    sum(losses.values()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------- the model


def test_registered_and_trains_one_step_then_returns_the_eval_contract() -> None:
    entry = detector_entry("yolo_af")
    assert entry.family == "yolo" and entry.trains and not entry.peer
    torch.manual_seed(0)
    model = get_detector("yolo_af", num_classes=3, image_size=96, width=16, depth=1)
    assert isinstance(model, YoloDetector) and model.config["variant"] == "yolo_af"
    assert model.config["reg_max"] == 16 and model.config["backbone"] == "resnet18"
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images = [torch.rand(3, 96, 80), torch.rand(3, 70, 96)]
    targets = [_target([[10, 10, 40, 50], [50, 20, 78, 60]], [0, 2]), _target([[5, 5, 60, 40]], [1])]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    losses = model(images, targets)
    assert set(losses) == {"loss_box", "loss_cls", "loss_dfl"} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    optimizer.step()
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.eval()
    with torch.no_grad():
        raw = model.net(torch.rand(2, 3, 96, 96))
        outputs = model(images)
    assert raw.shape == (2, 4 + 3, 12 * 12 + 6 * 6 + 3 * 3)
    assert ((raw[:, 4:] >= 0) & (raw[:, 4:] <= 1)).all() and (raw[:, 2:4] > 0).all()
    for image, out in zip(images, outputs):
        assert set(out) == {"boxes", "scores", "labels"} and len(out["boxes"]) > 0
        assert out["boxes"].dtype == torch.float32 and out["labels"].dtype == torch.int64
        h, w = image.shape[1:]
        assert (out["boxes"][:, 0::2] <= w).all() and (out["boxes"][:, 1::2] <= h).all() and (out["boxes"] >= 0).all()
        assert ((out["labels"] >= 0) & (out["labels"] < 3)).all()
        assert torch.all(out["scores"][:-1] >= out["scores"][1:])


def test_bfloat16_autocast_keeps_the_geometry_in_float32() -> None:
    """Under autocast the logits are bfloat16, the points and decoded boxes float32 (bfloat16 would
    round the 316-px points' boxes to 2 px)."""
    torch.manual_seed(0)
    model = get_detector("yolo_af", num_classes=2, image_size=320, width=8).train()
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        raw = model.net(torch.rand(1, 3, 320, 320))
        model.eval()
        out = model.net(torch.rand(1, 3, 320, 320))
    assert raw.box_logits.dtype == torch.bfloat16 and raw.boxes.dtype == raw.points.dtype == torch.float32
    assert raw.points[1599].tolist() == [316.0, 316.0] and raw.points[-1].tolist() == [304.0, 304.0]
    expected = distances_to_boxes(raw.points, dfl_decode(raw.box_logits[0].float()), raw.strides)
    torch.testing.assert_close(raw.boxes[0], expected)
    assert out.dtype == torch.float32


def test_overfits_one_image_with_two_boxes() -> None:
    """40 AdamW steps on one 64-px image (twice in the batch): the loss falls to a fraction of its
    start, both boxes are predicted at IoU > 0.85, and a well-placed box scores its class.

    (Each box's soft target concentrates on one point (IoU ** 6), which must then be told apart
    from its neighbours on the same object; on these 64-px maps one of the two objects gets there
    within the 40 steps, the other's score rises slowly.)"""
    torch.manual_seed(0)
    model = get_detector("yolo_af", num_classes=2, image_size=64, width=16).train()
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 64, 64, generator=g) * 0.3
    image[:, 8:40, 10:30] = 0.5 + 0.5 * torch.rand(3, 32, 20, generator=g)
    image[0, 30:60, 40:60] = 0.6 + 0.4 * torch.rand(30, 20, generator=g)
    target = _target([[10, 8, 30, 40], [40, 30, 60, 60]], [0, 1])
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.0)
    losses, best_iou, scores = [], [], []
    for _ in range(40):
        canvas, _, canvas_targets = model.preprocess([image, image], [target, target])
        raw = model.net(canvas)
        loss = sum(model.criterion(raw, canvas_targets).values())
        with torch.no_grad():
            iou = box_iou(canvas_targets[0]["boxes"], raw.boxes[0])  # [2, A]
            best_iou.append(iou.amax(dim=1))
            class_scores = raw.cls_logits[0].sigmoid()[:, canvas_targets[0]["labels"]].T  # [2, A]
            scores.append(torch.where(iou > 0.5, class_scores, 0.0).amax(dim=1))  # best score of a good box
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses
    assert best_iou[0].max() < 0.2 and best_iou[-1].min() > 0.85
    assert scores[0].max() < 0.02 and scores[-1].max() > 0.5 and (scores[-1] > scores[0]).all()


def test_fit_two_iterations_and_reload_best(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("tiny")
    build_digit_scenes(root, scene_config("tiny"), progress=False, workers=1)
    config = DetectTrainConfig(data=root / "coco", output=root / "run", detector="yolo_af",
                               detector_kwargs={"width": 16, "backbone": "resnet18"}, image_size=64, batch_size=4,
                               max_iters=2, warmup_iters=1, optimizer="adamw", lr=1e-3, device="cpu", threads=1,
                               progress=False, report_examples=2, ema=True, ema_tau=5.0)
    result = fit(config)
    assert result.stop_reason == "finished" and result.iterations == 2
    row = result.history[-1]
    assert {"loss_box", "loss_cls", "loss_dfl"} <= set(row) and all(
        math.isfinite(row[k]) for k in ("loss", "loss_box", "loss_cls", "loss_dfl"))
    assert 0.0 <= row["val_AP"] <= 1.0 and 0.0 <= result.test_metrics["AP"] <= 1.0
    model, names = load_detector(result.best, "cpu")
    assert names == [str(d) for d in range(10)] and isinstance(model, YoloDetector) and not model.training
    assert model.imgsz == 64 and model.config["width"] == 16
    saved = torch.load(result.best, weights_only=True)["model"]
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    with torch.no_grad():
        (out,) = model([torch.rand(3, 60, 80)])
    assert set(out) == {"boxes", "scores", "labels"} and out["boxes"].shape[1] == 4


# ----------------------------------------------------------------------------- bad input


class _NoStride8(Backbone):
    """A zoo-like model with maps of stride 4, 16 and 32 only."""

    def __init__(self) -> None:
        super().__init__()
        self.feature_info = [FeatureInfo("a", 8, 4), FeatureInfo("b", 16, 16), FeatureInfo("c", 32, 32)]

    def features(self, x: Tensor) -> OrderedDict[str, Tensor]:
        raise AssertionError("not reached")


def test_bad_options_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"needs feature maps of stride \[8, 16, 32\]; stride \[8\] missing"):
        get_detector("yolo_af", num_classes=2, image_size=64, backbone=_NoStride8())
    with pytest.raises(ValueError, match=r"yolo_af: reg_max must be an integer >= 2 .*got 1"):
        get_detector("yolo_af", num_classes=2, image_size=64, reg_max=1)
    with pytest.raises(ValueError, match=r"yolo_af: image_size must be a positive multiple of 32 .*got 100"):
        get_detector("yolo_af", num_classes=2, image_size=100)
    with pytest.raises(ValueError, match=r"yolo_af: width must be an integer >= 8 .*got 4"):
        get_detector("yolo_af", num_classes=2, image_size=64, width=4)
    with pytest.raises(ValueError, match=r"'lenet5' cannot serve a detector"):
        get_detector("yolo_af", num_classes=2, image_size=64, backbone="lenet5")
    model = get_detector("yolo_af", num_classes=2, image_size=64, width=8).train()
    with pytest.raises(ValueError, match=r"targets\[0\]: object 1 has label 2, expected 0-based labels in \[0, 1\]"):
        model([torch.rand(3, 64, 64)], [_target([[1, 1, 20, 20], [5, 5, 30, 30]], [0, 2])])
    with pytest.raises(ValueError, match="training mode needs targets"):
        model([torch.rand(3, 64, 64)])
