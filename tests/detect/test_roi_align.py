"""The thread-parallel RoIAlign backward against torchvision's MultiScaleRoIAlign on random inputs."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign

from detect.models.rcnn import roi_align
from detect.models.rcnn.roi_align import ParallelMultiScaleRoIAlign

NAMES = ["p2", "p3", "p4", "p5"]


@pytest.fixture
def two_threads(monkeypatch):
    """Two torch threads (the suite runs on one) and chunks of two RoIs, so the backward splits."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    monkeypatch.setattr(roi_align, "MIN_ROIS_PER_CHUNK", 2)
    yield
    torch.set_num_threads(before)


def _inputs(seed: int, levels: int = 4, channels: int = 8, size: int = 96):
    g = torch.Generator().manual_seed(seed)
    features = OrderedDict((NAMES[i], torch.randn(2, channels, size >> (i + 2), size >> (i + 2), generator=g))
                           for i in range(levels))
    boxes = []
    for count in (13, 7):
        xy = torch.rand(count, 2, generator=g) * (size - 8)
        wh = torch.rand(count, 2, generator=g) * 60 + 1
        boxes.append(torch.cat([xy, (xy + wh).clamp(max=size + 4)], dim=1))  # some reach past the image
    return features, boxes, [(size, size)] * 2


def _pools(levels: int):
    names = NAMES[:levels]
    ours, reference = ParallelMultiScaleRoIAlign(names, 7, 2), MultiScaleRoIAlign(names, 7, 2)
    scales = [2.0 ** -(i + 2) for i in range(levels)]
    ours.scales, reference.scales = scales, scales
    from torchvision.ops.poolers import initLevelMapper

    mapper = initLevelMapper(2, 1 + levels, canonical_scale=56)  # boxes of 7-60 px use every level
    ours.map_levels = reference.map_levels = mapper
    return ours, reference


def _pooled_and_grads(pool, features, boxes, shapes, weight):
    leaves = OrderedDict((k, v.clone().requires_grad_(True)) for k, v in features.items())
    out = pool(leaves, boxes, shapes)
    (out * weight).sum().backward()
    return out.detach(), [v.grad for v in leaves.values()]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("levels", [1, 4])
def test_matches_torchvision_forward_and_backward(two_threads, seed, levels):
    features, boxes, shapes = _inputs(seed, levels)
    ours, reference = _pools(levels)
    weight = torch.randn(20, 8, 7, 7, generator=torch.Generator().manual_seed(seed + 10))
    out, grads = _pooled_and_grads(ours, features, boxes, shapes, weight)
    ref_out, ref_grads = _pooled_and_grads(reference, features, boxes, shapes, weight)
    assert torch.equal(out, ref_out)
    assert sum(float(g.abs().sum()) for g in ref_grads) > 0
    for grad, ref in zip(grads, ref_grads):
        torch.testing.assert_close(grad, ref, rtol=1e-5, atol=1e-5)


def test_backward_is_split_over_threads(two_threads, monkeypatch):
    calls = []
    original = torch.ops.torchvision._roi_align_backward

    def counting(grad, rois, *args):
        calls.append(len(rois))
        return original(grad, rois, *args)

    monkeypatch.setattr(torch.ops.torchvision, "_roi_align_backward", counting)
    features, boxes, shapes = _inputs(0, levels=1)
    ours, _ = _pools(1)
    _pooled_and_grads(ours, features, boxes, shapes, torch.ones(20, 8, 7, 7))
    assert calls == [10, 10]


def test_bf16_autocast_gives_torchvision_dtypes(two_threads):
    features, boxes, shapes = _inputs(3)
    ours, reference = _pools(4)
    weight = torch.randn(20, 8, 7, 7)
    results = []
    for pool in (ours, reference):
        leaves = OrderedDict((k, v.bfloat16().requires_grad_(True)) for k, v in features.items())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = pool(leaves, boxes, shapes)
        (out.float() * weight).sum().backward()
        results.append((out, [v.grad for v in leaves.values()]))
    (out, grads), (ref_out, ref_grads) = results
    assert out.dtype == ref_out.dtype
    torch.testing.assert_close(out.float(), ref_out.float())
    for grad, ref in zip(grads, ref_grads):
        assert grad.dtype == ref.dtype == torch.bfloat16
        torch.testing.assert_close(grad.float(), ref.float(), rtol=2e-2, atol=2e-2)


def test_inference_and_one_thread_are_torchvisions_path(monkeypatch):
    """Without a gradient (or with one thread) the pool is torchvision's own code."""
    monkeypatch.setattr(roi_align._RoIAlignFunction, "apply", lambda *a: pytest.fail("parallel path taken"))
    features, boxes, shapes = _inputs(4)
    ours, reference = _pools(4)
    with torch.no_grad():
        assert torch.equal(ours(features, boxes, shapes), reference(features, boxes, shapes))
    assert torch.get_num_threads() == 1  # the suite's setting
    leaves = OrderedDict((k, v.requires_grad_(True)) for k, v in features.items())
    ours(leaves, boxes, shapes).sum().backward()


def test_pool_threads_leave_the_process_thread_count_alone(two_threads, monkeypatch):
    """The pool's threads run one torch thread each; the caller and threads started later keep 2."""
    import threading

    monkeypatch.setattr(roi_align, "_pool", None)  # built afresh by this backward
    features, boxes, shapes = _inputs(5, levels=1)
    ours, _ = _pools(1)
    _pooled_and_grads(ours, features, boxes, shapes, torch.ones(20, 8, 7, 7))
    seen = {}

    def later() -> None:
        torch.zeros(1 << 16).add_(1)
        seen["later"] = torch.get_num_threads()

    thread = threading.Thread(target=later)
    thread.start()
    thread.join()
    assert torch.get_num_threads() == 2 and seen["later"] == 2
    assert list(roi_align._pool.map(lambda _: torch.get_num_threads(), range(2))) == [1, 1]
    roi_align._pool.shutdown()
