"""YOLOv3 (``yolov3``): assignment and ignore by hand, losses with known values, box coding round
trip, the decoded eval output, one training step, ``fit`` + ``load_detector``, and bad input."""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from classify.base.checkpoint import load_checkpoint
from classify.models.features import Backbone, FeatureInfo
from detect.box_ops import box_convert
from detect.data.build import build_digit_scenes
from detect.data.scene_config import scene_config
from detect.engine.config import DetectTrainConfig
from detect.engine.trainer import fit
from detect.models.loading import load_detector
from detect.models.registry import detector_entry, get_detector
from detect.models.yolo.base import YoloDetector
from detect.models.yolo.kmeans import paper_anchors
from detect.models.yolo.v3 import STRIDES, decode_boxes, level_boxes
from detect.models.yolo.v3_loss import LevelOutput, YoloV3Loss, assign_targets, encode_boxes, ignore_mask

SIZE = 128  # canvas: grids 16x16, 8x8, 4x4
GRIDS = [(SIZE // s, SIZE // s) for s in STRIDES]
ANCHORS = torch.tensor([[4, 4], [6, 6], [8, 8], [12, 12], [16, 16], [20, 20], [32, 32], [48, 48], [64, 64]],
                       dtype=torch.float32)
NUM_CLASSES = 3
SMALL = dict(backbone="resnet18", width=0.25)


def target(boxes: list[list[float]], labels: list[int]) -> dict[str, Tensor]:
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64)}


def zero_outputs(batch: int = 1) -> list[LevelOutput]:
    """Training outputs of all-zero logits: each box centred in its cell with its anchor's size."""
    outputs = []
    for level, (stride, (h, w)) in enumerate(zip(STRIDES, GRIDS)):
        raw = torch.zeros(batch, 3, h, w, 5 + NUM_CLASSES, requires_grad=True)
        outputs.append(LevelOutput(raw, level_boxes(raw, ANCHORS[3 * level:3 * level + 3], stride), stride))
    return outputs


# ----------------------------------------------------------------------------- assignment and ignore


def test_each_box_goes_to_its_best_shape_anchor_level_and_centre_cell() -> None:
    targets = [target([[14, 30, 26, 42], [70, 35, 130, 105]], [0, 1]),  # 12x12 at (20, 36); 60x70 at (100, 70)
               target([[0.5, 122.5, 5.5, 127.5], [3, 3, 3, 9]], [2, 0])]  # 5x5 at (3, 125); zero width: skipped
    a = assign_targets(targets, ANCHORS, STRIDES, GRIDS)
    assert a.image.tolist() == [0, 0, 1] and a.box.tolist() == [0, 1, 0]
    # 12x12 is anchor 3 itself; 60x70: IoU 0.862 with 64x64 (0.549 with 48x48); 5x5: 25/36 with 6x6 (16/25 with 4x4)
    assert a.anchor.tolist() == [3, 8, 1]
    assert a.level.tolist() == [1, 2, 0] and a.slot.tolist() == [0, 2, 1]
    assert a.cell_x.tolist() == [20 // 16, 100 // 32, 3 // 8] and a.cell_y.tolist() == [36 // 16, 70 // 32, 125 // 8]
    empty = assign_targets([target([], [])], ANCHORS, STRIDES, GRIDS)
    assert len(empty) == 0


def test_ignore_mask_by_hand() -> None:
    preds = torch.tensor([[0.0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    gt = torch.tensor([[0.0, 0, 10, 10]])  # IoU 1, 1/3, 0
    assert ignore_mask(preds, gt, 0.5).tolist() == [True, False, False]
    assert ignore_mask(preds, gt, 0.3).tolist() == [True, True, False]
    assert ignore_mask(preds, gt[:0], 0.5).tolist() == [False, False, False]


def test_losses_with_zero_logits_by_hand() -> None:
    """One 12x12 box centred in cell (1, 2) of stride 16: the assigned prediction (anchor 3) decodes to it
    exactly; only anchor 4 (16x16, IoU 144/256 = 0.5625) of the same cell overlaps it by > 0.5."""
    gt = [target([[18, 34, 30, 46]], [2])]
    predictions = 3 * sum(h * w for h, w in GRIDS)  # 1008
    decoded = box_convert(torch.cat([o.boxes.reshape(-1, 4) for o in zero_outputs()]).detach(), "cxcywh", "xyxy")
    ignored = ignore_mask(decoded, gt[0]["boxes"], 0.5)
    assert ignored.sum() == 2  # the assigned prediction itself (IoU 1) and anchor 4 of its cell
    assert decoded[ignored].tolist() == [[18.0, 34.0, 30.0, 46.0], [16.0, 32.0, 32.0, 48.0]]
    losses = YoloV3Loss(ANCHORS, STRIDES, NUM_CLASSES, ignore_threshold=0.5)(zero_outputs(), gt)
    assert set(losses) == {"loss_box", "loss_obj", "loss_cls"}
    assert losses["loss_box"].item() == pytest.approx(0.0, abs=1e-9)  # offset 0.5 = sigmoid(0), log(12 / 12) = 0
    assert losses["loss_cls"].item() == pytest.approx(NUM_CLASSES * math.log(2), rel=1e-6)
    assert losses["loss_obj"].item() == pytest.approx((predictions - 1) * math.log(2), rel=1e-6)  # anchor 4 ignored
    nothing_ignored = YoloV3Loss(ANCHORS, STRIDES, NUM_CLASSES, ignore_threshold=1.0)(zero_outputs(), gt)
    assert nothing_ignored["loss_obj"].item() == pytest.approx(predictions * math.log(2), rel=1e-6)
    # the same box 4 px up-left: offsets (0.25, 0.25) against sigmoid(0) = 0.5, weight 2 - 144 / 128^2
    moved = YoloV3Loss(ANCHORS, STRIDES, NUM_CLASSES)(zero_outputs(), [target([[14, 30, 26, 42]], [2])])
    assert moved["loss_box"].item() == pytest.approx(2 * 0.25 ** 2 * (2 - 144 / SIZE ** 2), rel=1e-6)
    # GIoU: the exact box -> 0; the box is normalised by the batch size (2 images, one box)
    giou = YoloV3Loss(ANCHORS, STRIDES, NUM_CLASSES, box_loss="giou")(zero_outputs(2), gt + [target([], [])])
    assert giou["loss_box"].item() == pytest.approx(0.0, abs=1e-6)
    assert giou["loss_cls"].item() == pytest.approx(NUM_CLASSES * math.log(2) / 2, rel=1e-6)


def test_empty_targets_give_zero_box_and_class_losses_and_finite_gradients() -> None:
    outputs = zero_outputs(2)
    losses = YoloV3Loss(ANCHORS, STRIDES, NUM_CLASSES)(outputs, [target([], []), target([], [])])
    assert losses["loss_box"].item() == 0.0 and losses["loss_cls"].item() == 0.0
    assert losses["loss_obj"].item() == pytest.approx(1008 * math.log(2), rel=1e-6)  # 2 x 1008 negatives / 2 images
    sum(losses.values()).backward()
    for o in outputs:
        assert torch.isfinite(o.raw.grad).all()
        assert torch.count_nonzero(o.raw.grad[..., :4]) == 0 and torch.count_nonzero(o.raw.grad[..., 5:]) == 0


def test_encode_then_decode_is_the_identity() -> None:
    g = torch.Generator().manual_seed(0)
    stride = 16.0
    centres = torch.rand(200, 2, generator=g) * 300
    boxes = torch.cat((centres, torch.rand(200, 2, generator=g) * 150 + 2), dim=1)  # cx, cy, w, h
    anchors = torch.rand(200, 2, generator=g) * 100 + 5
    cells = (centres / stride).floor()
    encoded = encode_boxes(boxes, cells, anchors, stride)
    assert ((encoded[:, :2] > 0) & (encoded[:, :2] < 1)).all()
    t = torch.cat((torch.logit(encoded[:, :2].double()), encoded[:, 2:].double()), dim=1)
    torch.testing.assert_close(decode_boxes(t, cells.double(), anchors.double(), stride), boxes.double(),
                               rtol=1e-6, atol=1e-4)


# ----------------------------------------------------------------------------- the model


def small_model(**options: object) -> YoloDetector:
    torch.manual_seed(0)
    return get_detector("yolov3", num_classes=NUM_CLASSES, image_size=64, **{**SMALL, **options})


def test_registered_in_the_yolo_family_with_paper_anchors_by_default() -> None:
    assert detector_entry("yolov3").family == "yolo" and detector_entry("yolov3").trains
    model = small_model()
    torch.testing.assert_close(model.net.anchors.reshape(9, 2), paper_anchors(64).float())
    assert model.config["variant"] == "yolov3" and model.config["backbone"] == "resnet18"
    assert [f.stride for f in model.net.backbone.feature_info] == [8, 16, 32]
    # neck widths: a quarter of ResNet-18's 128 / 256 / 512 channels
    assert [s[0][0].out_channels for s in model.net.conv_sets] == [32, 64, 128]
    # objectness starts at ~8 objects an image over each level's 3 x 3 anchors x cells (capped at 0.1)
    objectness = [torch.sigmoid(p[-1].bias.view(3, 5 + NUM_CLASSES)[:, 4]) for p in model.net.predictions]
    torch.testing.assert_close(torch.stack(objectness), torch.tensor([[8 / (9 * 64)] * 3, [8 / (9 * 16)] * 3,
                                                                      [0.1] * 3]))
    assert all(isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.1
               for m in model.net.conv_sets.modules() if isinstance(m, (nn.LeakyReLU, nn.ReLU, nn.SiLU)))


def test_eval_output_decodes_the_prediction_layers() -> None:
    """Zero the last convolutions' weights: every box is its cell centre with its anchor's size, and every
    score sigmoid(objectness bias) x sigmoid(class bias)."""
    model = small_model().eval()
    with torch.no_grad():
        for layer in model.net.predictions:
            conv = layer[-1]
            conv.weight.zero_()
            bias = conv.bias.view(3, 5 + NUM_CLASSES)
            bias[:, :4] = 0.0
            bias[:, 4] = 1.0
            bias[:, 5:] = torch.tensor([-1.0, 0.0, 2.0])
        out = model.net(torch.rand(2, 3, 64, 64))
    cells = [(64 // s) ** 2 for s in STRIDES]  # 64, 16, 4
    assert out.shape == (2, 4 + NUM_CLASSES, 3 * sum(cells))
    anchors = paper_anchors(64).float()
    # the first prediction: stride 8, anchor 0, cell (0, 0); the last: stride 32, anchor 8, cell (1, 1)
    torch.testing.assert_close(out[0, :4, 0], torch.tensor([4.0, 4.0, *anchors[0]]))
    torch.testing.assert_close(out[1, :4, -1], torch.tensor([48.0, 48.0, *anchors[8]]))
    # stride 8, anchor 1 starts after anchor 0's 64 cells; cell 9 is (1, 1)
    torch.testing.assert_close(out[0, :4, 64 + 9], torch.tensor([12.0, 12.0, *anchors[1]]))
    expected = torch.sigmoid(torch.tensor(1.0)) * torch.sigmoid(torch.tensor([-1.0, 0.0, 2.0]))
    torch.testing.assert_close(out[:, 4:, :], expected.view(1, 3, 1).expand(2, 3, out.shape[2]))


def test_one_training_step_then_the_eval_contract() -> None:
    model = small_model().train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    images = [torch.rand(3, 60, 64), torch.rand(3, 64, 40)]
    targets = [target([[5, 5, 30, 40], [40, 10, 60, 30]], [0, 2]), target([], [])]
    losses = model(images, targets)
    assert set(losses) == {"loss_box", "loss_obj", "loss_cls"}
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values()) and losses["loss_box"] > 0
    before = model.net.predictions[0][-1].weight.detach().clone()
    optimizer.zero_grad()
    sum(losses.values()).backward()
    optimizer.step()
    assert not torch.equal(before, model.net.predictions[0][-1].weight)
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2
    for result, image in zip(out, images):
        assert set(result) == {"boxes", "scores", "labels"} and result["boxes"].shape[1] == 4
        assert len(result["boxes"]) == len(result["scores"]) == len(result["labels"]) > 0
        assert (result["boxes"][:, 2] <= image.shape[2]).all() and (result["boxes"][:, 3] <= image.shape[1]).all()
        assert ((result["scores"] > 0) & (result["scores"] <= 1)).all()
        assert result["labels"].dtype == torch.int64 and (result["labels"] < NUM_CLASSES).all()


def test_fit_on_tiny_then_load_detector(tmp_path: Path) -> None:
    build_digit_scenes(tmp_path / "tiny", scene_config("tiny"), progress=False, workers=1)
    anchors = (paper_anchors(64) * 1.5).tolist()
    config = DetectTrainConfig(data=tmp_path / "tiny" / "coco", output=tmp_path / "run", detector="yolov3",
                               detector_kwargs={**SMALL, "anchors": anchors, "frozen_bn": True,
                                                "trainable_layers": 2},
                               image_size=64, batch_size=4, max_iters=2, warmup_iters=1, device="cpu", threads=1,
                               progress=False, report_examples=0, ema=True, hflip=0.0)
    result = fit(config)
    assert result.iterations == 2 and result.best.is_file()
    losses = {k for k in result.history[0] if k.startswith("loss")}
    assert losses == {"loss", "loss_box", "loss_obj", "loss_cls"}
    model, names = load_detector(result.best)
    assert names == [str(d) for d in range(10)] and isinstance(model, YoloDetector) and not model.training
    saved = load_checkpoint(result.best).model
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    torch.testing.assert_close(model.net.anchors.reshape(9, 2), torch.tensor(anchors, dtype=torch.float32))
    with torch.no_grad():
        (out,) = model([torch.rand(3, 70, 90)])
    assert set(out) == {"boxes", "scores", "labels"}
    assert 0.0 <= result.test_metrics["AP50"] <= 1.0


# ----------------------------------------------------------------------------- bad input


class NoStride8(Backbone):
    """A toy backbone with maps of stride 4, 16 and 32 only."""

    classifier_paths = ("fc",)
    stem_conv_path = "c4"

    def __init__(self) -> None:
        super().__init__()
        self.c4 = nn.Conv2d(3, 8, 3, stride=4, padding=1)
        self.c16 = nn.Conv2d(8, 16, 3, stride=4, padding=1)
        self.c32 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.fc = nn.Linear(32, 1)
        self._set_feature_info([FeatureInfo("c4", 8, 4), FeatureInfo("c16", 16, 16), FeatureInfo("c32", 32, 32)])
        self._finish_init(0, 3)

    def features(self, x: Tensor) -> OrderedDict[str, Tensor]:
        a = self.c4(x)
        b = self.c16(a)
        return OrderedDict(c4=a, c16=b, c32=self.c32(b))

    def forward_head(self, features: OrderedDict[str, Tensor]) -> Tensor:
        return self.fc(features["c32"].mean((2, 3)))


@pytest.mark.parametrize(("options", "message"), [
    (dict(anchors=[[10, 13]] * 8),
     r"anchors must be 9 \(w, h\) pairs in pixels \(3 a level at strides \[8, 16, 32\]\), got 8 pairs"),
    (dict(anchors=[[10, 13, 1]] * 9), r"anchors: expected \(w, h\) pairs, a \[N, 2\] array, got shape \[9, 3\]"),
    (dict(anchors=[[10, 13], [5, 5]] + [[400, 400]] * 7), "anchors must be sorted by area"),
    (dict(anchors=[[0, 13]] + [[400, 400]] * 8), r"pair 0 is \[0.0, 13.0\], expected a positive"),
    (dict(anchors="big"), "anchors must be 9"),
    (dict(backbone=NoStride8()), r"needs feature maps of stride \[8, 16, 32\]; stride \[8\] missing, "
                                 r"feature_info has c4/4, c16/16, c32/32"),
    (dict(image_size=100), "image_size must be a positive multiple of 32"),
    (dict(box_loss="l1"), r"box_loss must be one of \('sse', 'giou'\)"),
    (dict(ignore_threshold=1.5), r"ignore_threshold must be an IoU in \[0, 1\]"),
    (dict(width=0), "width must be a positive fraction"),
])
def test_bad_options_are_clear_errors(options: dict, message: str) -> None:
    kwargs = {**SMALL, "image_size": 64, **options}
    with pytest.raises(ValueError, match=message):
        get_detector("yolov3", num_classes=NUM_CLASSES, **kwargs)
