"""Multi-level RoIAlign whose CPU backward runs on every torch thread.

torchvision's CPU RoIAlign backward is one loop over the RoIs on one thread, and it recomputes
the bilinear weights for every channel: in the CPU recipe's training step (512 sampled RoIs of 64
channels a batch) it was the largest single cost, 18% of the step, while the other core waited.
The gradient of RoIAlign is a sum over RoIs, so it splits exactly: :class:`ParallelMultiScaleRoIAlign`
cuts each level's RoIs into one chunk a torch thread, runs torchvision's own backward kernel on
each chunk in a thread pool (the kernel releases the GIL) and adds the chunks' input gradients.
The values are torchvision's; only the order of the float additions differs (~1e-6).

Everything else (inference, CUDA, ONNX tracing, one thread) is torchvision's ``MultiScaleRoIAlign``
unchanged: the parallel path is taken only when a gradient is needed on the CPU with more than one
torch thread.

    >>> pool = ParallelMultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)   # as torchvision's
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
import torchvision
from torch import Tensor
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.poolers import _convert_to_roi_format, _filter_input, _setup_scales

MIN_ROIS_PER_CHUNK = 16  # fewer RoIs than this a thread: one call (the threads' overhead would win)

_pool: ThreadPoolExecutor | None = None


def _single_threaded(started: threading.Barrier) -> None:
    """Pool-thread initializer: the thread's own ops run on it alone (an OpenMP team of its own
    would compete with the main thread's and keep spinning after the kernel returns)."""
    torch.set_num_threads(1)
    torch.get_num_threads()  # settles this thread's count now, before the caller restores the global one
    started.wait()


def _executor(workers: int) -> ThreadPoolExecutor:
    """A process-wide pool of ``workers`` threads of one torch thread each (rebuilt when the thread
    count changes).

    ``torch.set_num_threads`` also sets the count that threads started later adopt, so the pool's
    threads are all started here and the caller's setting is then restored: the rest of the
    process keeps its thread count.
    """
    global _pool
    if _pool is None or _pool._max_workers != workers:  # noqa: SLF001 - no public accessor
        if _pool is not None:
            _pool.shutdown(wait=False)
        started = threading.Barrier(workers + 1)
        _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="roi_align_backward",
                                   initializer=_single_threaded, initargs=(started,))
        for _ in range(workers):
            _pool.submit(int)  # each submission starts a thread while none is idle
        started.wait()
        torch.set_num_threads(workers)
    return _pool


def _chunks(count: int, workers: int) -> list[slice]:
    parts = max(1, min(workers, count // MIN_ROIS_PER_CHUNK))
    bounds = [count * i // parts for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


class _RoIAlignFunction(torch.autograd.Function):
    """torchvision's RoIAlign (``aligned=False``, as ``MultiScaleRoIAlign`` pools) computed in
    float32, with the backward split over the RoIs (see the module docstring)."""

    @staticmethod
    def forward(ctx: Any, features: Tensor, rois: Tensor, spatial_scale: float, output_size: tuple[int, int],
                sampling_ratio: int, workers: int) -> Tensor:
        ctx.save_for_backward(rois)
        ctx.spatial_scale, ctx.output_size, ctx.sampling_ratio, ctx.workers = (spatial_scale, output_size,
                                                                               sampling_ratio, workers)
        ctx.shape, ctx.dtype = features.shape, features.dtype
        with torch.autocast("cpu", enabled=False):
            out = torch.ops.torchvision.roi_align(features.float(), rois.float(), spatial_scale, *output_size,
                                                  sampling_ratio, False)
        return out.to(features.dtype)  # as torchvision's autocast wrapper of the op returns it

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        (rois,) = ctx.saved_tensors
        batch, channels, height, width = ctx.shape
        grad, rois = grad.float().contiguous(), rois.float()

        def part(rows: slice) -> Tensor:
            return torch.ops.torchvision._roi_align_backward(
                grad[rows], rois[rows], ctx.spatial_scale, *ctx.output_size, batch, channels, height, width,
                ctx.sampling_ratio, False)

        parts = list(_executor(ctx.workers).map(part, _chunks(len(rois), ctx.workers)))
        total = parts[0]
        for other in parts[1:]:
            total += other
        return total.to(ctx.dtype), None, None, None, None, None


class ParallelMultiScaleRoIAlign(MultiScaleRoIAlign):
    """torchvision's ``MultiScaleRoIAlign`` with the thread-parallel CPU backward of this module.

    Same arguments, same outputs ``[K, C, output_size, output_size]`` for boxes ``list[Tensor[k_i, 4]]``
    xyxy in image pixels; ``scales`` and ``map_levels`` must be set (as
    :func:`detect.models.rcnn.faster_rcnn` sets them from the strides) or are inferred on the first call as
    torchvision infers them.
    """

    def forward(self, x: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]) -> Tensor:
        features = _filter_input(x, self.featmap_names)
        workers = torch.get_num_threads()
        parallel = (workers > 1 and torch.is_grad_enabled() and not torchvision._is_tracing()
                    and features[0].device.type == "cpu" and any(f.requires_grad for f in features))
        if not parallel:
            return super().forward(x, boxes, image_shapes)
        if self.scales is None or self.map_levels is None:
            self.scales, self.map_levels = _setup_scales(features, image_shapes, self.canonical_scale,
                                                         self.canonical_level)
        rois = _convert_to_roi_format(boxes)
        size = tuple(self.output_size)
        if len(features) == 1:
            return _RoIAlignFunction.apply(features[0], rois, self.scales[0], size, self.sampling_ratio, workers)
        levels = self.map_levels(boxes)
        result = features[0].new_zeros((len(rois), features[0].shape[1], *size))
        for level, (feature, scale) in enumerate(zip(features, self.scales)):
            index = torch.where(levels == level)[0]  # a level without RoIs still gets its (zero) gradient
            pooled = _RoIAlignFunction.apply(feature, rois[index], scale, size, self.sampling_ratio, workers)
            result[index] = pooled.to(result.dtype)
        return result
