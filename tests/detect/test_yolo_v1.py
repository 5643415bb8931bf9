"""YOLOv1: the box parametrisation, target assignment, the paper's loss on hand-made cases, test-time
scoring, one training step, the eval contract, ``fit`` + ``load_detector``, and bad options."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from classify.base.checkpoint import load_checkpoint
from detect.box_ops import box_convert
from detect.data.build import build_digit_scenes
from detect.data.scene_config import scene_config
from detect.engine.config import DetectTrainConfig
from detect.engine.trainer import fit
from detect.models.loading import load_detector
from detect.models.registry import detector_entry, get_detector
from detect.models.yolo.base import YoloDetector
from detect.models.yolo.v1 import YoloV1Net, decode_output
from detect.models.yolo.v1_loss import (
    YoloV1Loss,
    YoloV1Output,
    assign_targets,
    decode_boxes,
    encode_boxes,
    paired_iou,
    responsible_predictor,
)

LOSS_KEYS = {"loss_box", "loss_obj", "loss_noobj", "loss_cls"}
SMALL = dict(backbone="resnet18", reduce_channels=16, hidden=32)
# hand-made scene on a 64-px canvas, a 2 x 2 grid of 32-px cells
IMGSZ, GRID = 64, 2
BOX_A = [4.0, 8.0, 20.0, 40.0]     # centre (12, 24): cell 0, x 0.375, y 0.75, w 16/64, h 32/64
BOX_B = [40.0, 40.0, 56.0, 48.0]   # centre (48, 44): cell 3, x 0.5, y 0.375, w 16/64, h 8/64
BOX_C = [10.0, 20.0, 14.0, 24.0]   # centre (12, 22): cell 0 too, smaller than A -> dropped
PARAMS_A = [0.375, 0.75, 0.5, math.sqrt(0.5)]
PARAMS_B = [0.5, 0.375, 0.5, math.sqrt(0.125)]


def _target(boxes: list[list[float]], labels: list[int]) -> dict[str, torch.Tensor]:
    return {"boxes": torch.tensor(boxes).reshape(-1, 4), "labels": torch.tensor(labels, dtype=torch.int64)}


def _small(size: int = 64, **kwargs: object) -> YoloDetector:
    torch.manual_seed(0)
    return get_detector("yolov1", num_classes=3, image_size=size, **{**SMALL, **kwargs})


# ----------------------------------------------------------------------------- the parametrisation


def test_encode_then_decode_is_the_identity_on_random_boxes() -> None:
    g = torch.Generator().manual_seed(0)
    imgsz, grid = 320, 10
    xy = torch.rand(200, 2, generator=g) * 300
    wh = torch.rand(200, 2, generator=g) * 150 + 1
    boxes = torch.cat((xy, (xy + wh).clamp(max=imgsz)), 1)
    cells, params = encode_boxes(boxes, grid, imgsz)
    assert cells.min() >= 0 and cells.max() < grid * grid
    assert params.min() >= 0 and params.max() <= 1
    full = torch.zeros(len(boxes), grid * grid, 1, 4)
    full[torch.arange(len(boxes)), cells, 0] = params
    decoded = decode_boxes(full, grid, imgsz)[torch.arange(len(boxes)), cells, 0]
    torch.testing.assert_close(box_convert(decoded, "cxcywh", "xyxy"), boxes, atol=1e-3, rtol=0)


def test_encode_gives_the_papers_cell_offsets_and_square_rooted_sizes() -> None:
    cells, params = encode_boxes(torch.tensor([BOX_A, BOX_B]), GRID, IMGSZ)
    assert cells.tolist() == [0, 3]
    torch.testing.assert_close(params, torch.tensor([PARAMS_A, PARAMS_B]))


# ----------------------------------------------------------------------------- targets


def test_each_object_goes_to_the_cell_of_its_centre_the_largest_one_a_cell() -> None:
    for order in ([0, 1, 2], [2, 1, 0]):  # the choice does not depend on the annotation order
        boxes, labels = [[BOX_A, BOX_B, BOX_C][i] for i in order], [[2, 0, 1][i] for i in order]
        cell = assign_targets([_target(boxes, labels), _target([], [])], GRID, IMGSZ)
        assert cell.has_object.tolist() == [[True, False, False, True], [False] * 4]
        assert cell.labels.tolist() == [[2, 0, 0, 0], [0] * 4]
        assert cell.dropped == 1  # C shares A's cell
        torch.testing.assert_close(cell.boxes[0, [0, 3]], torch.tensor([PARAMS_A, PARAMS_B]))
        assert cell.boxes[0, [1, 2]].abs().sum() == 0 and cell.boxes[1].abs().sum() == 0
        assert cell.boxes_xyxy[0, 0].tolist() == BOX_A and cell.boxes_xyxy[0, 3].tolist() == BOX_B


def test_the_responsible_predictor_has_the_highest_iou_else_the_nearest_box() -> None:
    iou = torch.tensor([[[0.2, 0.6], [0.0, 0.0]]])
    params = torch.tensor([[[[0.5, 0.5, 0.5, 0.5], [0.1, 0.1, 0.1, 0.1]]] * 2])
    target = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [0.2, 0.1, 0.1, 0.1]]])
    assert responsible_predictor(iou, params, target).tolist() == [[1, 1]]
    target[0, 1] = torch.tensor([0.6, 0.5, 0.5, 0.5])
    assert responsible_predictor(iou, params, target).tolist() == [[1, 0]]


def test_paired_iou() -> None:
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0], [3.0, 3.0, 3.0, 3.0]])
    b = torch.tensor([[5.0, 0.0, 15.0, 10.0], [20.0, 20.0, 30.0, 30.0], [3.0, 3.0, 3.0, 3.0]])
    torch.testing.assert_close(paired_iou(a, b), torch.tensor([1 / 3, 0.0, 0.0]))


# ----------------------------------------------------------------------------- the loss


def _hand_made_output(batch: int = 1) -> YoloV1Output:
    """Cell 0: box 0 at the cell centre, 16 x 16 px (IoU 1/3 with A), box 1 = A shifted 3.2 px right (IoU 2/3)."""
    boxes = torch.full((batch, 4, 2, 4), 0.5)
    boxes[:, 0, 1] = torch.tensor(PARAMS_A) + torch.tensor([0.1, 0.0, 0.0, 0.0])
    confidence = torch.full((batch, 4, 2), 0.1)
    confidence[:, 0] = torch.tensor([0.4, 0.8])
    probs = torch.full((batch, 4, 3), 1 / 3)
    probs[:, 0] = torch.tensor([0.2, 0.3, 0.5])
    return YoloV1Output(boxes, confidence, probs)


def test_the_loss_terms_on_a_hand_made_case() -> None:
    loss = YoloV1Loss(GRID, IMGSZ, num_classes=3)
    out = loss(_hand_made_output(), [_target([BOX_A], [2])])
    assert set(out) == LOSS_KEYS
    expected = {
        "loss_box": 5 * 0.1 ** 2,               # lambda_coord x the responsible box 1's x error
        "loss_obj": (0.8 - 2 / 3) ** 2,         # confidence target = its IoU with A
        "loss_noobj": 0.5 * (0.4 ** 2 + 6 * 0.1 ** 2),  # box 0 of cell 0 and both boxes of cells 1-3
        "loss_cls": 0.2 ** 2 + 0.3 ** 2 + 0.5 ** 2,     # cell 0 only, one-hot class 2
    }
    for key, value in expected.items():
        assert out[key].item() == pytest.approx(value, rel=1e-5), key
    # normalised by the batch size: an empty second image halves the object terms
    two = loss(_hand_made_output(2), [_target([BOX_A], [2]), _target([], [])])
    for key in ("loss_box", "loss_obj", "loss_cls"):
        assert two[key].item() == pytest.approx(expected[key] / 2, rel=1e-5), key
    empty_noobj = 0.5 * 0.1 ** 2 * 6 + 0.5 * (0.4 ** 2 + 0.8 ** 2)
    assert two["loss_noobj"].item() == pytest.approx((expected["loss_noobj"] + empty_noobj) / 2, rel=1e-5)


def test_without_objects_the_box_and_class_terms_are_exactly_zero() -> None:
    model = _small()
    model.train()
    out = model([torch.rand(3, 64, 64), torch.rand(3, 50, 64)], [_target([], []), _target([], [])])
    assert set(out) == LOSS_KEYS
    assert out["loss_box"].item() == 0.0 and out["loss_obj"].item() == 0.0 and out["loss_cls"].item() == 0.0
    assert math.isfinite(out["loss_noobj"].item()) and out["loss_noobj"].item() > 0
    sum(out.values()).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


# ----------------------------------------------------------------------------- scoring and layout


def test_scores_are_class_probability_times_confidence() -> None:
    out = _hand_made_output()
    decoded = decode_output(out, GRID, IMGSZ)
    assert decoded.shape == (1, 4 + 3, 4 * 2)
    scores = decoded[0, 4:]  # [C, P * B], prediction cell * B + b
    torch.testing.assert_close(scores[:, 0], 0.4 * torch.tensor([0.2, 0.3, 0.5]))
    torch.testing.assert_close(scores[:, 1], 0.8 * torch.tensor([0.2, 0.3, 0.5]))
    torch.testing.assert_close(scores[:, 7], torch.full((3,), 0.1 / 3))
    # cell 3 (col 1, row 1), box 1: centre of the cell, a quarter of the canvas each way
    torch.testing.assert_close(decoded[0, :4, 7], torch.tensor([48.0, 48.0, 16.0, 16.0]))
    torch.testing.assert_close(decoded[0, :4, 1], torch.tensor([12.0 + 3.2, 24.0, 16.0, 32.0]))


def test_scores_clamp_confidence_and_class_values_to_0_1() -> None:
    boxes = torch.full((1, 1, 2, 4), 0.5)
    out = YoloV1Output(boxes, torch.tensor([[[1.3, -0.2]]]), torch.tensor([[[1.1, 0.5, -0.4]]]))
    scores = decode_output(out, 1, 32)[0, 4:]
    torch.testing.assert_close(scores, torch.tensor([[1.0, 0.0], [0.5, 0.0], [0.0, 0.0]]))


def test_split_reads_the_per_cell_layout_and_boxes_start_at_the_cell_centres() -> None:
    net = _small().net
    raw = torch.zeros(1, net.grid * net.grid, 2 * 5 + 3)
    raw[0, 1, :5] = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5])       # cell 1, box 0: x, y, sqrt w, sqrt h, confidence
    raw[0, 1, 5:10] = torch.tensor([0.6, 0.7, 0.8, 0.9, -1.0])    # cell 1, box 1
    raw[0, 1, 10:] = torch.tensor([2.0, 3.0, 4.0])                # cell 1's class values
    out = net.split(raw)
    assert out.boxes.shape == (1, 4, 2, 4) and out.confidence.shape == (1, 4, 2) and out.class_probs.shape == (1, 4, 3)
    torch.testing.assert_close(out.boxes[0, 1], torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.6, 0.7, 0.8, 0.9]]))
    torch.testing.assert_close(out.confidence[0, 1], torch.tensor([0.5, -1.0]))
    torch.testing.assert_close(out.class_probs[0, 1], torch.tensor([2.0, 3.0, 4.0]))
    head = net.head.predict[-1]
    with torch.no_grad():
        head.weight.zero_()
        decoded = net.eval()(torch.rand(1, 3, 64, 64))[0]
    centres = torch.tensor([[16.0, 16.0], [16.0, 16.0], [48.0, 16.0], [48.0, 16.0], [16.0, 48.0], [16.0, 48.0],
                            [48.0, 48.0], [48.0, 48.0]])
    torch.testing.assert_close(decoded[:2].T, centres)
    torch.testing.assert_close(decoded[2:4], torch.full((2, 8), 16.0))  # (0.5)^2 of the 64-px canvas
    assert decoded[4:].abs().sum() == 0  # confidences start at 0, so do the scores
    bias = head.bias.view(-1, 2 * 5 + 3)
    assert (bias[:, [4, 9]] == 0).all() and (bias[:, 10:] == 1 / 3).all()  # class values start at 1 / C


# ----------------------------------------------------------------------------- the model


@pytest.mark.parametrize("head", ["fc", "conv"])
def test_one_training_step_then_the_eval_contract(head: str) -> None:
    model = _small(head=head)
    assert isinstance(model.net, YoloV1Net) and model.net.grid == 2 and model.nms_threshold == 0.5
    assert model.config["variant"] == "yolov1" and model.score_threshold == 0.001
    images = [torch.rand(3, 64, 80), torch.rand(3, 48, 64)]
    targets = [_target([[5.0, 5.0, 30.0, 40.0]], [1]),
               _target([[10.0, 10.0, 50.0, 40.0], [0.0, 0.0, 9.0, 9.0]], [0, 2])]
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = model(images, targets)
    assert set(losses) == LOSS_KEYS and all(torch.isfinite(v) and v > 0 for v in losses.values())
    before = model.net.head.predict[-1].weight.detach().clone()
    sum(losses.values()).backward()
    optimizer.step()
    assert not torch.equal(before, model.net.head.predict[-1].weight)
    with torch.no_grad():  # one step does not make confident boxes: lift confidences and class values to ~0.5
        model.net.head.predict[-1].bias.view(-1, 2 * 5 + 3)[:, [4, 9, 10, 11, 12]] = 0.5
    model.eval()
    with torch.no_grad():
        assert model.net(torch.rand(2, 3, 64, 64)).shape == (2, 4 + 3, 2 * 2 * 2)
        results = model(images)
    assert isinstance(results, list) and len(results) == 2
    for result, image in zip(results, images):
        assert set(result) == {"boxes", "scores", "labels"} and 0 < len(result["boxes"]) <= 8
        h, w = image.shape[-2:]
        boxes = result["boxes"]
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
        assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
        assert (boxes[:, 2:] >= boxes[:, :2]).all()
        assert result["labels"].dtype == torch.int64 and result["labels"].max() < 3
        assert ((result["scores"] > 0) & (result["scores"] <= 1)).all()


def test_another_grid_resamples_the_stride_32_map() -> None:
    model = _small(size=96, grid=5).eval()  # 3 x 3 map pooled to 5 x 5
    assert model.net.grid == 5 and model.criterion.grid == 5
    with torch.no_grad():
        assert model.net(torch.rand(1, 3, 96, 96)).shape == (1, 7, 5 * 5 * 2)
    assert get_detector("yolov1", num_classes=3, image_size=64, backbone="resnet18",
                        boxes_per_cell=3, **{k: v for k, v in SMALL.items() if k != "backbone"}).net.head.per_cell == 18
    assert detector_entry("yolov1").family == "yolo"


@pytest.mark.parametrize(("options", "message"), [
    (dict(image_size=100), "image_size must be a positive multiple of 32 .* got 100"),
    (dict(image_size=0), "image_size must be a positive multiple of 32"),
    (dict(grid=0), "grid must be an int >= 1, got 0"),
    (dict(boxes_per_cell=0), "boxes_per_cell must be an int >= 1"),
    (dict(head="mlp"), r"head must be one of \('fc', 'conv'\), got 'mlp'"),
    (dict(backbone="lenet5"), "grid lies over a stride-32 feature map, but the backbone's maps are C1/1"),
])
def test_bad_options_are_clear_errors(options: dict, message: str) -> None:
    settings = dict(num_classes=3, image_size=64, **SMALL)
    with pytest.raises(ValueError, match=message):
        get_detector("yolov1", **{**settings, **options})


# ----------------------------------------------------------------------------- detect train


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    build_digit_scenes(out, scene_config("tiny"), progress=False, workers=1)
    return out / "coco"


def test_fit_trains_two_iterations_and_load_detector_reloads_it(tiny: Path, tmp_path: Path) -> None:
    config = DetectTrainConfig(data=tiny, output=tmp_path / "run", detector="yolov1", detector_kwargs=dict(SMALL),
                               image_size=64, batch_size=4, max_iters=2, warmup_iters=1, device="cpu", threads=1,
                               progress=False, report_examples=1, ema=True, ema_tau=5.0)
    result = fit(config)
    assert result.best.is_file() and result.iterations == 2
    row = result.history[-1]
    assert LOSS_KEYS <= set(row) and all(math.isfinite(row[k]) for k in LOSS_KEYS)
    assert 0.0 <= row["val_AP"] <= 1.0
    model, names = load_detector(result.best, "cpu")
    assert names == [str(d) for d in range(10)] and isinstance(model, YoloDetector) and not model.training
    saved = load_checkpoint(result.best).model
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    with torch.no_grad():
        (out,) = model([torch.rand(3, 100, 90)])
    assert set(out) == {"boxes", "scores", "labels"} and len(out["boxes"]) <= 2 * 2 * 2
