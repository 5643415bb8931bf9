"""detect.box_ops against brute-force pure-Python references."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from detect import box_ops

FAST = settings(max_examples=60, deadline=None)

# Coordinates on a quarter-pixel grid are exact in float32, so zero-area, touching and identical
# boxes really are what they look like to both torch and the Python references.
_coord = st.integers(0, 200).map(lambda v: v / 4)
_side = st.integers(0, 80).map(lambda v: v / 4)  # 0 gives zero-area boxes


@st.composite
def xyxy_lists(draw, min_size=0, max_size=12):
    """Lists of valid xyxy boxes (x1 <= x2, y1 <= y2), some degenerate, some repeated."""
    boxes = draw(st.lists(st.tuples(_coord, _coord, _side, _side), min_size=min_size, max_size=max_size))
    boxes = [(x, y, x + w, y + h) for x, y, w, h in boxes]
    if boxes and draw(st.booleans()):
        boxes += draw(st.lists(st.sampled_from(boxes), max_size=3))  # exact duplicates
    return boxes


def as_tensor(boxes, dtype=torch.float32):
    return torch.tensor(boxes, dtype=dtype).reshape(-1, 4)


# --------------------------------------------------------------------------- references


def area_py(b):
    return (b[2] - b[0]) * (b[3] - b[1])


def inter_union_py(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter, area_py(a) + area_py(b) - inter


def iou_py(a, b):
    inter, union = inter_union_py(a, b)
    return 0.0 if union == 0 else inter / union


def giou_py(a, b):
    _, union = inter_union_py(a, b)
    enclosing = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    penalty = 0.0 if enclosing == 0 else (enclosing - union) / enclosing
    return iou_py(a, b) - penalty


def greedy_nms_py(boxes, scores, labels, threshold):
    """Textbook greedy NMS, per class: visit by score, keep a box unless a kept one overlaps it."""
    kept = []
    for i in sorted(range(len(boxes)), key=lambda i: -scores[i]):
        if all(labels[j] != labels[i] or iou_py(boxes[i], boxes[j]) <= threshold for j in kept):
            kept.append(i)
    return kept


# --------------------------------------------------------------------------- conversions


@st.composite
def any_format_boxes(draw):
    corner, side = st.floats(-1000, 1000), st.floats(0, 500)
    rows = draw(st.lists(st.tuples(corner, corner, side, side), max_size=8))
    return torch.tensor(rows, dtype=torch.float64).reshape(-1, 4)


@FAST
@given(any_format_boxes(), st.sampled_from(box_ops.BOX_FORMATS), st.sampled_from(box_ops.BOX_FORMATS))
def test_conversions_round_trip(boxes, fmt_a, fmt_b):
    there = box_ops.box_convert(boxes, fmt_a, fmt_b)
    back = box_ops.box_convert(there, fmt_b, fmt_a)
    torch.testing.assert_close(back, boxes, atol=1e-9, rtol=0)


def test_conversion_values():
    xyxy = torch.tensor([[10.0, 20.0, 40.0, 30.0]])
    xywh = torch.tensor([[10.0, 20.0, 30.0, 10.0]])
    cxcywh = torch.tensor([[25.0, 25.0, 30.0, 10.0]])
    named = {"xyxy": xyxy, "xywh": xywh, "cxcywh": cxcywh}
    for (a, boxes_a), (b, boxes_b) in itertools.product(named.items(), repeat=2):
        torch.testing.assert_close(box_ops.box_convert(boxes_a, a, b), boxes_b)


def test_conversion_rejects_bad_format_and_shape():
    boxes = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="xyxy, xywh, cxcywh"):
        box_ops.box_convert(boxes, "xyxy", "yolo")
    with pytest.raises(ValueError, match=r"\[\.\.\., 4\]"):
        box_ops.box_convert(torch.zeros(2, 5), "xyxy", "xywh")


@FAST
@given(any_format_boxes(), st.floats(1, 4000), st.floats(1, 4000))
def test_normalize_round_trip(boxes, width, height):
    normalized = box_ops.normalize_boxes(boxes, width, height)
    torch.testing.assert_close(normalized[:, 0::2], boxes[:, 0::2] / width)
    torch.testing.assert_close(normalized[:, 1::2], boxes[:, 1::2] / height)
    torch.testing.assert_close(box_ops.denormalize_boxes(normalized, width, height), boxes)


def test_normalize_cxcywh_commutes_with_conversion():
    xyxy = torch.tensor([[10.0, 20.0, 40.0, 30.0]])
    via_xyxy = box_ops.box_convert(box_ops.normalize_boxes(xyxy, 50, 40), "xyxy", "cxcywh")
    via_cxcywh = box_ops.normalize_boxes(box_ops.box_convert(xyxy, "xyxy", "cxcywh"), 50, 40)
    torch.testing.assert_close(via_xyxy, via_cxcywh)
    torch.testing.assert_close(via_cxcywh, torch.tensor([[0.5, 0.625, 0.6, 0.25]]))


# --------------------------------------------------------------------------- IoU


def _pairwise(fn, boxes1, boxes2):
    return torch.tensor([[fn(a, b) for b in boxes2] for a in boxes1], dtype=torch.float64).reshape(
        len(boxes1), len(boxes2)
    )


@FAST
@given(xyxy_lists(), xyxy_lists())
def test_iou_matches_brute_force(boxes1, boxes2):
    boxes2 = boxes2 + boxes1[:2]  # identical pairs
    got = box_ops.box_iou(as_tensor(boxes1), as_tensor(boxes2))
    torch.testing.assert_close(got.double(), _pairwise(iou_py, boxes1, boxes2), atol=1e-6, rtol=0)


@FAST
@given(xyxy_lists(), xyxy_lists())
def test_giou_matches_brute_force(boxes1, boxes2):
    boxes2 = boxes2 + boxes1[:2]
    got = box_ops.generalized_box_iou(as_tensor(boxes1), as_tensor(boxes2))
    torch.testing.assert_close(got.double(), _pairwise(giou_py, boxes1, boxes2), atol=1e-6, rtol=0)


def ioa_py(a, b):
    inter, _ = inter_union_py(a, b)
    return 0.0 if area_py(a) == 0 else inter / area_py(a)


@FAST
@given(xyxy_lists(), xyxy_lists())
def test_ioa_matches_brute_force(boxes1, boxes2):
    boxes2 = boxes2 + boxes1[:2]
    got = box_ops.box_ioa(as_tensor(boxes1), as_tensor(boxes2))
    torch.testing.assert_close(got.double(), _pairwise(ioa_py, boxes1, boxes2), atol=1e-6, rtol=0)


@FAST
@given(xyxy_lists(), xyxy_lists())
def test_numpy_boxes_give_the_float64_torch_result_as_numpy(boxes1, boxes2):
    """The evaluators' float64 arrays go through the same code: bit-equal to float64 tensors."""
    a, b = as_tensor(boxes1, torch.float64), as_tensor(boxes2, torch.float64)
    for fn in (box_ops.box_iou, box_ops.box_ioa):
        got = fn(a.numpy(), b.numpy())
        assert isinstance(got, np.ndarray) and got.dtype == np.float64
        np.testing.assert_array_equal(got, fn(a, b).numpy())


def test_iou_of_degenerate_boxes_is_defined():
    point = as_tensor([[5, 5, 5, 5]])
    line = as_tensor([[0, 5, 10, 5]])
    far_point = as_tensor([[9, 9, 9, 9]])
    assert box_ops.box_iou(point, point).item() == 0.0
    assert box_ops.generalized_box_iou(point, point).item() == 0.0
    assert box_ops.generalized_box_iou(point, line).item() == 0.0  # enclosing box is a line too
    assert box_ops.generalized_box_iou(point, far_point).item() == -1.0
    assert box_ops.box_area(line).item() == 0.0


def test_area():
    torch.testing.assert_close(box_ops.box_area(as_tensor([[0, 0, 2, 3], [1, 1, 1, 4]])), torch.tensor([6.0, 0.0]))


# --------------------------------------------------------------------------- NMS


@st.composite
def detections(draw):
    boxes = draw(xyxy_lists(max_size=14))
    n = len(boxes)
    scores = [s + 0.5 for s in draw(st.permutations(range(n)))]  # distinct: order is unambiguous
    labels = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    threshold = draw(st.sampled_from([0.25, 0.5, 0.75]))  # exact in float32
    return boxes, scores, labels, threshold


def _assume_no_near_ties(boxes, threshold):
    for a, b in itertools.combinations(boxes, 2):
        assume(not 0 < abs(iou_py(a, b) - threshold) < 1e-6)


@FAST
@given(detections())
def test_batched_nms_matches_greedy_reference(case):
    boxes, scores, labels, threshold = case
    _assume_no_near_ties(boxes, threshold)
    labels_t = torch.tensor(labels, dtype=torch.int64)
    keep = box_ops.batched_nms(as_tensor(boxes), torch.tensor(scores), labels_t, threshold)
    assert keep.dtype == torch.int64
    assert keep.tolist() == greedy_nms_py(boxes, scores, labels, threshold)


@FAST
@given(detections())
def test_nms_matches_greedy_reference(case):
    boxes, scores, _, threshold = case
    _assume_no_near_ties(boxes, threshold)
    keep = box_ops.nms(as_tensor(boxes), torch.tensor(scores), threshold)
    assert keep.tolist() == greedy_nms_py(boxes, scores, [0] * len(boxes), threshold)


def test_nms_on_no_boxes():
    empty = torch.zeros(0, 4)
    assert box_ops.batched_nms(empty, torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5).numel() == 0


# --------------------------------------------------------------------------- clip / small


@FAST
@given(
    st.lists(st.tuples(*[st.integers(-100, 300).map(float)] * 4), max_size=10),
    st.integers(1, 200),
    st.integers(1, 200),
)
def test_clip_matches_direct(rows, height, width):
    clipped = box_ops.clip_boxes_to_image(as_tensor(rows), (height, width))
    expected = [
        [min(max(v, 0.0), limit) for v, limit in zip(row, (width, height, width, height))] for row in rows
    ]
    assert clipped.tolist() == expected


@FAST
@given(xyxy_lists(), st.sampled_from([0.0, 0.25, 1.0, 3.5]))
def test_remove_small_matches_direct(boxes, min_size):
    keep = box_ops.remove_small_boxes(as_tensor(boxes), min_size)
    expected = [i for i, b in enumerate(boxes) if b[2] - b[0] >= min_size and b[3] - b[1] >= min_size]
    assert keep.tolist() == expected


# --------------------------------------------------------------------------- validate


def test_validate_accepts_good_and_empty_boxes():
    box_ops.validate_boxes(as_tensor([[0, 0, 10, 5], [2, 3, 4, 5]]), width=10, height=5)
    box_ops.validate_boxes(torch.zeros(0, 4), width=10, height=5)
    box_ops.validate_boxes(as_tensor([[-5, -5, 1e6, 1e6]]))  # no image size: no bounds check


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ([1, 1, math.nan, 4], "non-finite"),
        ([1, 1, math.inf, 4], "non-finite"),
        ([3, 1, 3, 4], "x2 <= x1"),
        ([3, 1, 2, 4], "x2 <= x1"),
        ([1, 4, 3, 4], "y2 <= y1"),
        ([-1, 1, 3, 4], "outside the image width 20"),
        ([1, 1, 21, 4], "outside the image width 20"),
        ([1, -0.5, 3, 4], "outside the image height 10"),
        ([1, 1, 3, 10.5], "outside the image height 10"),
    ],
)
def test_validate_names_first_bad_box_and_reason(bad, reason):
    boxes = as_tensor([[0, 0, 20, 10], bad, [5, 5, 5, 5]])
    with pytest.raises(ValueError, match="box 1 ") as info:
        box_ops.validate_boxes(boxes, width=20, height=10, where="img_7.jpg")
    message = str(info.value)
    assert message.startswith("img_7.jpg: box 1 ")
    assert reason in message


def test_validate_rejects_bad_shape():
    with pytest.raises(ValueError, match=r"shape \[N, 4\], got \[4\]"):
        box_ops.validate_boxes(torch.zeros(4))
