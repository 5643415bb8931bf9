"""Faster R-CNN's inference as one batched export graph.

torchvision's ``GeneralizedRCNN`` runs its transform, proposal filtering and detection
post-processing image by image in Python; a trace unrolls those loops for the example's batch
size, so a traced file would only ever take that many images.  :class:`RCNNGraph` computes the
same eval-mode result for a whole batch of same-size images with batched tensor operations, on
the model's own modules (backbone, RPN head, anchor generator, box coders, RoIAlign pool, box
head and predictor):

1. normalise, resize like ``GeneralizedRCNNTransform`` (short side to ``min_size`` unless the
   long side would pass ``max_size``; the output size computed in float64 as torchvision does
   in Python), pad to a multiple of ``size_divisible``;
2. RPN: per level the ``pre_nms_top_n`` best anchors of each image, decoded and clipped, small
   and low-scoring ones dropped, NMS per (image, level), the ``post_nms_top_n`` best an image;
3. RoIAlign over the proposals of every image at once (the image index in each RoI; the RoIs
   grouped by pyramid level), box head,
   class-specific boxes decoded and clipped, background dropped, ``score > score_thresh``, empty
   boxes dropped, NMS per (image, class), the ``detections_per_img`` best an image;
4. boxes scaled back to the input's pixels, labels made 0-based.

Each step follows torchvision's eval code (``transform.py``, ``rpn.py``, ``roi_heads.py``,
``poolers.py`` of torchvision 0.29) operation for operation, so the eager detector and the graph
agree to float rounding; the NMS is :func:`detect.export.graph.group_nms`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.ops import roi_align
from torchvision.ops.poolers import _setup_scales

from detect.export.graph import (
    ExportGraph,
    NotExportable,
    clip_to,
    dims,
    flat_image_index,
    group_nms,
    image_shape,
    keep_first_per_image,
)
from detect.models.postprocess import PostprocessSettings

__all__ = ["RCNNGraph", "find_rcnn"]


def find_rcnn(model: torch.nn.Module) -> GeneralizedRCNN | None:
    """The ``GeneralizedRCNN`` of ``model``: itself (our Faster R-CNN) or the one a peer wraps."""
    if isinstance(model, GeneralizedRCNN):
        return model
    inner = getattr(model, "model", None)
    return inner if isinstance(inner, GeneralizedRCNN) else None


def check_exportable(model: torch.nn.Module, rcnn: GeneralizedRCNN, name: str) -> None:
    """Raise :class:`NotExportable` for the Faster R-CNN options the graph does not reproduce."""
    extra = tuple(getattr(rcnn.transform, "extra_test_sizes", ()) or ())
    if extra:
        raise NotExportable(f"{name}: cannot export a multi-size test (extra_test_sizes={list(extra)}: detections "
                            "at several input sizes merged by NMS); export it at one size (--image-size N)")
    if getattr(model, "rescorer", None) is not None:
        raise NotExportable(f"{name}: cannot export the crop rescorer (rescore_with): it crops every detection "
                            "out of the image and classifies it with a second network; export the detector "
                            "without rescore_with")
    heads = rcnn.roi_heads
    if heads.has_mask() or heads.has_keypoint():
        raise NotExportable(f"{name}: cannot export mask or keypoint heads (boxes only)")
    if getattr(heads, "box_roi_pool", None) is None or not hasattr(heads.box_roi_pool, "featmap_names"):
        raise NotExportable(f"{name}: its box RoI pool is not torchvision's MultiScaleRoIAlign")


class RCNNGraph(ExportGraph):
    """Eval-mode Faster R-CNN over a batch of same-size images (see the module docstring).

    Args:
        rcnn: a torchvision ``GeneralizedRCNN`` (ours or a peer's) whose labels count the
            background as 0; the graph's labels are ``label - 1``.
        name: the model's name, for error messages.
    """

    family = "faster_rcnn"

    def __init__(self, rcnn: GeneralizedRCNN, name: str = "faster_rcnn", config: dict[str, Any] | None = None) -> None:
        super().__init__()
        transform = rcnn.transform
        self.backbone, self.rpn, self.roi_heads = rcnn.backbone, rcnn.rpn, rcnn.roi_heads
        self.min_size = int(transform.min_size[-1])
        self.max_size = int(transform.max_size)
        self.fixed_size = tuple(transform.fixed_size) if transform.fixed_size is not None else None
        self.size_divisible = int(transform.size_divisible)
        self.image_mean = [float(v) for v in transform.image_mean]
        self.image_std = [float(v) for v in transform.image_std]
        self.register_buffer("mean", torch.tensor(self.image_mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(self.image_std, dtype=torch.float32).view(1, -1, 1, 1))
        heads = rcnn.roi_heads
        self.settings = PostprocessSettings(float(heads.score_thresh), float(heads.nms_thresh),
                                            int(heads.detections_per_img))
        self._config = dict(config or {})
        self.name = name

    # -- metadata -------------------------------------------------------------------------------
    def preprocessing(self) -> dict[str, Any]:
        return {"kind": "rcnn_resize", "min_size": self.min_size, "max_size": self.max_size,
                "fixed_size": list(self.fixed_size) if self.fixed_size else None,
                "size_divisible": self.size_divisible, "mean": self.image_mean, "std": self.image_std,
                "interpolation": "bilinear", "description": "normalise with mean/std, resize so the short side is "
                "min_size unless the long side would exceed max_size, zero-pad to a multiple of size_divisible"}

    def image_size(self) -> int:
        return int(min(self.fixed_size)) if self.fixed_size is not None else self.min_size

    def config(self) -> dict[str, Any]:
        return dict(self._config)

    def prepare(self, example: Tensor) -> None:
        """Run once on ``example`` in eager mode before tracing: torchvision's RoIAlign pool infers
        its level scales on its first call, which must not happen inside the trace."""
        pool = self.roi_heads.box_roi_pool
        if pool.scales is None or pool.map_levels is None:
            batch, resized = self._preprocess(example)
            features = self._features(batch)
            filtered = [f for k, f in features.items() if k in pool.featmap_names]
            pool.scales, pool.map_levels = _setup_scales(filtered, [tuple(resized.tolist())],
                                                         pool.canonical_scale, pool.canonical_level)

    # -- the graph ------------------------------------------------------------------------------
    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        num_images, original = image_shape(images)
        batch, resized = self._preprocess(images)
        features = self._features(batch)
        height, width = resized[0].to(torch.float32), resized[1].to(torch.float32)
        proposals, proposal_image = self._proposals(batch, list(features.values()), num_images, height, width)
        boxes, scores, labels, batch_index = self._detections(features, proposals, proposal_image, num_images,
                                                              height, width)
        ratio = original.to(torch.float32) / resized.to(torch.float32)  # as torchvision's resize_boxes
        boxes = boxes * torch.stack((ratio[1], ratio[0], ratio[1], ratio[0])).to(boxes.device)
        return boxes, scores, labels - 1, batch_index

    def _preprocess(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Normalised, resized and padded batch, and the resized ``int64[2]`` (height, width)."""
        _, hw = image_shape(images)
        x = (images - self.mean) / self.std
        if self.fixed_size is not None:
            size = torch.tensor([self.fixed_size[1], self.fixed_size[0]], dtype=torch.int64)
        else:
            # torchvision: scale = min(min_size / short side, max_size / long side), in Python floats;
            # 1-element float64 tensors keep the exporter from rounding the arithmetic to float32
            hw_f = hw.to(torch.float64)
            short, long = hw_f.min(0, keepdim=True)[0], hw_f.max(0, keepdim=True)[0]
            limits = torch.tensor([self.min_size, self.max_size], dtype=torch.float64)
            scale = torch.cat((limits[0:1] / short, limits[1:2] / long)).min(0, keepdim=True)[0]
            size = torch.floor(hw_f * scale).to(torch.int64)
        x = F.interpolate(x, size=dims(size), mode="bilinear", align_corners=False)
        stride = self.size_divisible
        pad = (size + (stride - 1)) // stride * stride - size
        pad_h, pad_w = dims(pad)
        return F.pad(x, (0, pad_w, 0, pad_h)), size

    def _features(self, batch: Tensor) -> OrderedDict[str, Tensor]:
        features = self.backbone(batch)
        if isinstance(features, Tensor):
            features = OrderedDict([("0", features)])
        return features

    def _anchors(self, batch: Tensor, features: list[Tensor]) -> list[Tensor]:
        """Per level ``[H_l * W_l * A_l, 4]`` anchors of the padded batch (as ``AnchorGenerator.forward``)."""
        generator = self.rpn.anchor_generator
        grid_sizes = [f.shape[-2:] for f in features]
        image_size = batch.shape[-2:]
        device = features[0].device
        strides = [[torch.empty((), dtype=torch.int64, device=device).fill_(image_size[0] // g[0]),
                    torch.empty((), dtype=torch.int64, device=device).fill_(image_size[1] // g[1])] for g in grid_sizes]
        generator.set_cell_anchors(features[0].dtype, features[0].device)
        return generator.grid_anchors(grid_sizes, strides)

    def _proposals(self, batch: Tensor, features: list[Tensor], num_images: Tensor | int, height: Tensor,
                   width: Tensor) -> tuple[Tensor, Tensor]:
        """RPN proposals of every image (``[P, 4]`` resized pixels) and their image indices."""
        rpn = self.rpn
        objectness, deltas = rpn.head(features)
        anchors = self._anchors(batch, features)
        pre_nms_top_n = rpn.pre_nms_top_n()
        boxes, scores, levels = [], [], []
        for level, (logits, reg, level_anchors) in enumerate(zip(objectness, deltas, anchors)):
            logits = logits.permute(0, 2, 3, 1).reshape(num_images, -1)  # [N, H*W*A], as permute_and_flatten
            reg = reg.permute(0, 2, 3, 1).reshape(num_images, -1, 4)
            top, index = logits.topk(_top_k(logits, pre_nms_top_n), dim=1)
            reg = torch.gather(reg, 1, index.unsqueeze(-1).expand(-1, -1, 4))
            boxes.append(_decode(rpn.box_coder, reg, level_anchors[index])[..., 0, :])
            scores.append(top)
            levels.append(torch.full_like(index, level))
        boxes = clip_to(torch.cat(boxes, 1), height, width).reshape(-1, 4)
        scores = torch.sigmoid(torch.cat(scores, 1))
        image = flat_image_index(num_images, scores)
        levels = torch.cat(levels, 1).reshape(-1)
        scores = scores.reshape(-1)
        widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        keep = torch.where((widths >= rpn.min_size) & (heights >= rpn.min_size) & (scores >= rpn.score_thresh))[0]
        boxes, scores, levels, image = boxes[keep], scores[keep], levels[keep], image[keep]
        order = group_nms(boxes, scores, image * len(anchors) + levels, rpn.nms_thresh)
        order = keep_first_per_image(order, image, num_images, rpn.post_nms_top_n())
        return boxes[order], image[order]

    def _pool(self, features: OrderedDict[str, Tensor], proposals: Tensor,
              proposal_image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """torchvision's ``MultiScaleRoIAlign`` (``_multiscale_roi_align``) with the RoIs' image
        indices given: ``(pooled, proposals, proposal_image)``, the proposals reordered level by
        level to match the pooled features (concatenated, rather than scattered back into the
        original order: every RoI is processed on its own from here on, and the final NMS sorts)."""
        pool = self.roi_heads.box_roi_pool
        maps = [f for k, f in features.items() if k in pool.featmap_names]  # as _filter_input
        rois = torch.cat((proposal_image.to(proposals.dtype)[:, None], proposals), 1)
        if len(maps) == 1:
            return roi_align(maps[0], rois, pool.output_size, pool.scales[0], pool.sampling_ratio), proposals, \
                proposal_image
        levels = pool.map_levels([proposals])
        members = [torch.where(levels == level)[0] for level in range(len(maps))]
        pooled = torch.cat([roi_align(feature, rois[index], pool.output_size, scale, pool.sampling_ratio)
                            for feature, scale, index in zip(maps, pool.scales, members)])
        order = torch.cat(members)
        return pooled, proposals[order], proposal_image[order]

    def _detections(self, features: OrderedDict[str, Tensor], proposals: Tensor, proposal_image: Tensor,
                    num_images: Tensor | int, height: Tensor, width: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        heads = self.roi_heads
        pooled, proposals, proposal_image = self._pool(features, proposals, proposal_image)
        class_logits, box_regression = heads.box_predictor(heads.box_head(pooled))
        boxes = clip_to(_decode(heads.box_coder, box_regression, proposals), height, width)  # [P, C + 1, 4]
        scores = F.softmax(class_logits, -1)
        boxes, scores = boxes[:, 1:], scores[:, 1:]  # the background out
        labels = torch.arange(1, scores.shape[1] + 1, device=scores.device).view(1, -1).expand_as(scores).reshape(-1)
        image = proposal_image.view(-1, 1).expand_as(scores).reshape(-1)
        boxes, scores = boxes.reshape(-1, 4), scores.reshape(-1)
        widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        keep = torch.where((scores > heads.score_thresh) & (widths >= 1e-2) & (heights >= 1e-2))[0]
        boxes, scores, labels, image = boxes[keep], scores[keep], labels[keep], image[keep]
        order = group_nms(boxes, scores, image * class_logits.shape[1] + labels, heads.nms_thresh)
        order = keep_first_per_image(order, image, num_images, heads.detections_per_img)
        return boxes[order], scores[order], labels[order], image[order]


def _top_k(scores: Tensor, k: int) -> Tensor | int:
    """``min(k, scores.shape[1])``, traced from the input's shape (torchvision's ``_topk_min``)."""
    if not torch.jit.is_tracing():
        return min(k, scores.shape[1])
    count = torch._shape_as_tensor(scores)[1].unsqueeze(0)
    return torch.min(torch.cat((torch.tensor([k], dtype=count.dtype), count), 0))


def _decode(coder: Any, rel_codes: Tensor, boxes: Tensor) -> Tensor:
    """torchvision's ``BoxCoder.decode_single`` with leading batch dimensions: ``rel_codes
    [..., 4 * K]`` against reference ``boxes [..., 4]`` -> ``[..., K, 4]`` (same operations)."""
    boxes = boxes.to(rel_codes.dtype)
    widths = boxes[..., 2] - boxes[..., 0]
    heights = boxes[..., 3] - boxes[..., 1]
    ctr_x = boxes[..., 0] + 0.5 * widths
    ctr_y = boxes[..., 1] + 0.5 * heights
    wx, wy, ww, wh = coder.weights
    dx = rel_codes[..., 0::4] / wx
    dy = rel_codes[..., 1::4] / wy
    dw = torch.clamp(rel_codes[..., 2::4] / ww, max=coder.bbox_xform_clip)
    dh = torch.clamp(rel_codes[..., 3::4] / wh, max=coder.bbox_xform_clip)
    pred_ctr_x = dx * widths[..., None] + ctr_x[..., None]
    pred_ctr_y = dy * heights[..., None] + ctr_y[..., None]
    pred_w = torch.exp(dw) * widths[..., None]
    pred_h = torch.exp(dh) * heights[..., None]
    half_h, half_w = 0.5 * pred_h, 0.5 * pred_w
    return torch.stack((pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h), dim=-1)
