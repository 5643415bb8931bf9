"""detect.data.transforms and detect.data.collate."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from detect.data.collate import detection_collate
from detect.data.transforms import (
    ColorJitter,
    Compose,
    Letterbox,
    RandomHorizontalFlip,
    RandomScaleJitter,
    Resize,
    build_transforms,
    unletterbox_boxes,
)

FAST = settings(max_examples=50, deadline=None)


def make_target(boxes, image_id=7, orig_size=(37, 53)):
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    n = len(boxes)
    return {
        "boxes": boxes,
        "labels": torch.arange(10, 10 + n, dtype=torch.int64),  # distinct: shows which box is which
        "difficult": torch.arange(n) % 2 == 0,
        "iscrowd": torch.arange(n) % 3 == 0,
        "image_id": image_id,
        "orig_size": orig_size,
    }


def make_image(h=37, w=53, seed=0):
    return torch.rand(3, h, w, generator=torch.Generator().manual_seed(seed))


BOXES = [[1.0, 2.0, 50.0, 30.0], [10.0, 5.0, 20.0, 36.0], [0.0, 0.0, 53.0, 37.0]]


def all_transforms(size=32):
    return [
        Resize(20),
        Resize((16, 24)),
        Resize(20, max_size=25),
        Letterbox(size),
        Letterbox(size, scale_range=(0.5, 1.5)),
        RandomHorizontalFlip(1.0),
        RandomScaleJitter((0.8, 1.2)),
        ColorJitter(0.4, 0.4, 0.4, 0.1),
        build_transforms(train=True, size=size),
        build_transforms(train=True, size=size, letterbox=True),
        build_transforms(train=False, size=size),
        build_transforms(train=False, size=size, letterbox=True),
    ]


# --------------------------------------------------------------------------- flip


def test_flip_mirrors_boxes():
    image, target = make_image(), make_target(BOXES)
    out_image, out = RandomHorizontalFlip(1.0)(image, target)
    torch.testing.assert_close(out_image, image.flip(-1))
    x1, y1, x2, y2 = target["boxes"].unbind(-1)
    torch.testing.assert_close(out["boxes"], torch.stack([53 - x2, y1, 53 - x1, y2], dim=-1))


def test_flip_twice_is_identity():
    image, target = make_image(), make_target(BOXES)
    flip = RandomHorizontalFlip(1.0)
    out_image, out = flip(*flip(image, target))
    assert torch.equal(out_image, image)
    torch.testing.assert_close(out["boxes"], target["boxes"])
    assert torch.equal(out["labels"], target["labels"])


def test_flip_with_p_zero_changes_nothing():
    image, target = make_image(), make_target(BOXES)
    out_image, out = RandomHorizontalFlip(0.0)(image, target)
    assert torch.equal(out_image, image)
    assert torch.equal(out["boxes"], target["boxes"])


# --------------------------------------------------------------------------- resize


def scaled(boxes, sx, sy):
    return boxes * torch.tensor([sx, sy, sx, sy])


def test_resize_shorter_side_scales_boxes():
    image, target = make_image(37, 53), make_target(BOXES)
    out_image, out = Resize(20)(image, target)
    assert out_image.shape == (3, 20, 28)  # 53 * 20 / 37 = 28.6, floored like torchvision
    torch.testing.assert_close(out["boxes"], scaled(target["boxes"], 28 / 53, 20 / 37))


def test_resize_exact_size_scales_boxes():
    image, target = make_image(37, 53), make_target(BOXES)
    out_image, out = Resize((16, 24))(image, target)
    assert out_image.shape == (3, 16, 24)
    torch.testing.assert_close(out["boxes"], scaled(target["boxes"], 24 / 53, 16 / 37))


def test_resize_max_size_caps_longer_side():
    image, target = make_image(37, 53), make_target(BOXES)
    out_image, out = Resize(20, max_size=25)(image, target)
    assert out_image.shape[-1] == 25 and out_image.shape[-2] < 20
    h = out_image.shape[-2]
    torch.testing.assert_close(out["boxes"], scaled(target["boxes"], 25 / 53, h / 37))


def test_scale_jitter_with_fixed_factor():
    image, target = make_image(40, 60), make_target([[4.0, 8.0, 40.0, 36.0]])
    out_image, out = RandomScaleJitter((0.5, 0.5))(image, target)
    assert out_image.shape == (3, 20, 30)
    torch.testing.assert_close(out["boxes"], target["boxes"] * 0.5)


def test_scale_jitter_stays_in_range():
    torch.manual_seed(0)
    jitter = RandomScaleJitter((0.8, 1.2))
    for _ in range(20):
        out_image, _ = jitter(make_image(50, 50), make_target(BOXES))
        assert 40 <= out_image.shape[-1] == out_image.shape[-2] <= 60


# --------------------------------------------------------------------------- letterbox


@FAST
@given(
    st.integers(16, 120),
    st.integers(16, 120),
    st.sampled_from([32, 64, 97]),
    st.lists(st.tuples(*[st.floats(0, 1)] * 4), max_size=6),
)
def test_letterbox_round_trip(h, w, size, unit_boxes):
    # boxes inside the h x w image with sides of at least 1 px on the canvas, so none is dropped
    m = 1.01 * max(h, w) / size
    boxes = []
    for a, b, c, d in unit_boxes:
        x1, y1 = a * (w - m), b * (h - m)
        boxes.append([x1, y1, x1 + m + c * (w - m - x1), y1 + m + d * (h - m - y1)])
    target = make_target(boxes, orig_size=(h, w))
    image, out = Letterbox(size)(make_image(h, w), target)
    assert image.shape == (3, size, size)
    scale, pad_x, pad_y = out["letterbox"]
    assert len(out["boxes"]) == len(boxes)
    recovered = unletterbox_boxes(out["boxes"], scale, pad_x, pad_y)
    torch.testing.assert_close(recovered, target["boxes"], atol=1e-4, rtol=0)
    assert out["orig_size"] == (h, w)


def test_letterbox_centres_image_on_fill():
    image, target = make_image(20, 40), make_target([[0.0, 0.0, 40.0, 20.0]])
    out_image, out = Letterbox(80, fill=0.25)(image, target)
    assert out["letterbox"] == (2.0, 0, 20)
    assert torch.all(out_image[:, :20] == 0.25) and torch.all(out_image[:, 60:] == 0.25)
    assert out_image.shape == (3, 80, 80)
    torch.testing.assert_close(out["boxes"], torch.tensor([[0.0, 20.0, 80.0, 60.0]]))


def test_letterbox_zoom_in_crops_and_clips():
    image, target = make_image(40, 40), make_target([[0.0, 0.0, 40.0, 40.0], [0.0, 0.0, 4.0, 4.0]])
    out_image, out = Letterbox(40, scale_range=(2.0, 2.0))(image, target)
    assert out_image.shape == (3, 40, 40)
    assert out["letterbox"] == (2.0, -20, -20)
    # the corner box falls off the canvas and is dropped with its fields
    assert out["boxes"].tolist() == [[0.0, 0.0, 40.0, 40.0]]
    assert out["labels"].tolist() == [10]


@pytest.mark.parametrize("side, scale", [(20, 2.0), (40, 2.0), (40, 0.5)])
def test_letterbox_translate_places_the_image_at_random_offsets(side, scale):
    # a one-pixel white dot on black: after the transform it sits where its box says
    image = torch.zeros(3, side, side)
    image[:, 7, 11] = 1.0
    target = make_target([[11.0, 7.0, 12.0, 8.0]])
    letterbox = Letterbox(40, fill=0.0, scale_range=(scale, scale), translate=True)
    slack = 40 - round(40 * scale)  # canvas side minus the resized image's side
    torch.manual_seed(0)
    offsets = set()
    for _ in range(60):
        out_image, out = letterbox(image, target)
        assert out_image.shape == (3, 40, 40)
        s, pad_x, pad_y = out["letterbox"]
        assert s == pytest.approx(40 / side * scale)
        assert min(0, slack) <= pad_x <= max(0, slack) and min(0, slack) <= pad_y <= max(0, slack)
        offsets.add((pad_x, pad_y))
        if len(out["boxes"]):  # the dot stayed on the canvas: image and box moved together
            x1, y1, x2, y2 = out["boxes"][0].tolist()
            inside = out_image[0, int(y1):int(y2) + 1, int(x1):int(x2) + 1]
            assert inside.max() > 0.2
            near = out_image[0, max(0, int(y1) - 2):int(y2) + 3, max(0, int(x1) - 2):int(x2) + 3]
            assert float(near.sum()) == pytest.approx(float(out_image[0].sum()), rel=1e-4)
    assert len(offsets) > 10  # random, not centred


def test_letterbox_translate_is_training_only():
    evaluation = build_transforms(train=False, size=32, letterbox=True, translate=True)
    _, out = evaluation(make_image(16, 32), make_target([[0.0, 0.0, 8.0, 8.0]]))
    assert out["letterbox"] == (1.0, 0, 8)  # centred, as without translate


# --------------------------------------------------------------------------- dropping boxes


def test_dropped_boxes_keep_fields_aligned():
    # shrinking by 4 makes boxes 0 and 2 narrower than a pixel
    boxes = [[0.0, 0.0, 3.0, 20.0], [4.0, 4.0, 40.0, 30.0], [10.0, 10.0, 30.0, 12.0], [50.0, 0.0, 60.0, 40.0]]
    target = make_target(boxes)
    target["area"] = torch.tensor([60.0, 936.0, 40.0, 400.0])
    image, out = RandomScaleJitter((0.25, 0.25))(make_image(40, 60), target)
    assert image.shape == (3, 10, 15)
    keep = [1, 3]
    torch.testing.assert_close(out["boxes"], target["boxes"][keep] / 4)
    for key in ("labels", "difficult", "iscrowd", "area"):
        assert torch.equal(out[key], target[key][keep]), key
    assert out["image_id"] == 7 and out["orig_size"] == (37, 53)


def test_boxes_outside_image_are_clipped():
    target = make_target([[-5.0, -5.0, 10.0, 10.0], [55.0, 0.0, 60.0, 10.0]])
    _, out = RandomHorizontalFlip(0.0)(make_image(37, 53), target)
    assert out["boxes"].tolist() == [[0.0, 0.0, 10.0, 10.0]]
    assert out["labels"].tolist() == [10]


def test_input_target_is_not_modified():
    target = make_target(BOXES)
    before = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in target.items()}
    for transform in all_transforms():
        transform(make_image(), target)
    assert target.keys() == before.keys()
    for key, value in before.items():
        assert torch.equal(target[key], value) if isinstance(value, torch.Tensor) else target[key] == value


# --------------------------------------------------------------------------- colour


@pytest.mark.parametrize("pixels", ["random", "black", "white"])
def test_color_jitter_keeps_boxes_and_range(pixels):
    torch.manual_seed(0)
    image = {"random": make_image(), "black": torch.zeros(3, 37, 53), "white": torch.ones(3, 37, 53)}[pixels]
    target = make_target(BOXES)
    jitter = ColorJitter(brightness=0.9, contrast=0.9, saturation=0.9, hue=0.5)
    for _ in range(5):
        out_image, out = jitter(image, target)
        assert out_image.shape == image.shape
        assert 0.0 <= out_image.min() and out_image.max() <= 1.0
        assert out is target


# --------------------------------------------------------------------------- every transform


@pytest.mark.parametrize("transform", all_transforms(), ids=repr)
def test_empty_targets_pass_through(transform):
    target = make_target([])
    assert target["boxes"].shape == (0, 4)
    image, out = transform(make_image(), target)
    assert image.ndim == 3 and image.shape[0] == 3
    assert out["boxes"].shape == (0, 4)
    assert out["boxes"].dtype == torch.float32
    assert out["labels"].shape == (0,) and out["labels"].dtype == torch.int64
    assert out["difficult"].dtype == torch.bool
    assert out["image_id"] == 7 and out["orig_size"] == (37, 53)


@pytest.mark.parametrize("transform", all_transforms(), ids=repr)
def test_outputs_are_valid(transform):
    torch.manual_seed(1)
    image, out = transform(make_image(), make_target(BOXES))
    assert type(image) is torch.Tensor and type(out["boxes"]) is torch.Tensor
    assert image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
    h, w = image.shape[-2:]
    boxes = out["boxes"]
    assert torch.all(boxes[:, 2:] - boxes[:, :2] >= 1)
    assert torch.all(boxes[:, :2] >= 0) and torch.all(boxes[:, 2] <= w) and torch.all(boxes[:, 3] <= h)
    assert {len(out[k]) for k in ("boxes", "labels", "difficult", "iscrowd")} == {len(boxes)}


# --------------------------------------------------------------------------- presets


def test_build_transforms_eval_is_deterministic():
    for letterbox in (False, True):
        pipeline = build_transforms(train=False, size=32, letterbox=letterbox)
        first = pipeline(make_image(), make_target(BOXES))
        second = pipeline(make_image(), make_target(BOXES))
        assert torch.equal(first[0], second[0]) and torch.equal(first[1]["boxes"], second[1]["boxes"])
    image, _ = build_transforms(train=False, size=32, letterbox=True)(make_image(), make_target(BOXES))
    assert image.shape == (3, 32, 32)
    image, _ = build_transforms(train=False, size=32)(make_image(), make_target(BOXES))
    assert min(image.shape[-2:]) == 32


def test_build_transforms_train_steps():
    steps = build_transforms(train=True, size=32).transforms
    assert [type(s) for s in steps] == [Resize, RandomScaleJitter, RandomHorizontalFlip, ColorJitter]
    steps = build_transforms(train=True, size=32, letterbox=True, hflip=0, color_jitter=0).transforms
    assert [type(s) for s in steps] == [Letterbox] and steps[0].scale_range == (0.8, 1.2)
    assert not steps[0].translate
    steps = build_transforms(train=True, size=32, letterbox=True, translate=True).transforms
    assert steps[0].translate
    steps = build_transforms(train=True, size=32, scale_jitter=None, hflip=0, color_jitter=0).transforms
    assert [type(s) for s in steps] == [Resize]
    assert isinstance(build_transforms(train=False, size=32, letterbox=True), Compose)


def test_train_letterbox_output_is_square():
    torch.manual_seed(0)
    pipeline = build_transforms(train=True, size=48, letterbox=True)
    for _ in range(10):
        image, _ = pipeline(make_image(), make_target(BOXES))
        assert image.shape == (3, 48, 48)


# --------------------------------------------------------------------------- collate


def test_detection_collate_keeps_lists():
    batch = [(make_image(37, 53), make_target(BOXES)), (make_image(20, 30), make_target([]))]
    images, targets = detection_collate(batch)
    assert isinstance(images, list) and isinstance(targets, list)
    assert [i.shape for i in images] == [(3, 37, 53), (3, 20, 30)]
    assert targets[0] is batch[0][1] and targets[1] is batch[1][1]
    assert detection_collate([]) == ([], [])


def test_detection_collate_in_dataloader():
    batch = [(make_image(10 + i, 12), make_target(BOXES[:i])) for i in range(3)]
    loader = torch.utils.data.DataLoader(batch, batch_size=2, collate_fn=detection_collate)
    images, targets = next(iter(loader))
    assert len(images) == len(targets) == 2
    assert [len(t["boxes"]) for t in targets] == [0, 1]
