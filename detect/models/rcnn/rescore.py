"""Classification refinement: rescore a detector's boxes with a classifier of each box's image crop.

A two-stage detector's box head classifies a 7 x 7 pool of features shared with the RPN; a
classifier that reads each detected box's own crop of the image makes different mistakes, and the
product of the two scores ranks true objects above the false alarms of either (decoupled
classification refinement, Cheng et al., "Revisiting RCNN: On Awakening the Classification Power
of Faster RCNN", ECCV 2018).  The CPU recipe refines with the classifier it pretrains its backbone
with (``classify train`` on the crops of :mod:`detect.data.crops`, with a ``background`` class),
so the refinement costs no training time:

    score' = score ** (1 - weight) * p ** weight

``p`` is the classifier's probability of the detection's label.  Crops are cut as
:func:`detect.data.crops.crop_window` cuts them for the classifier's training (a square of side
``max(w, h) * (1 + 2 * context)`` centred on the box, outside the image filled with its mean
colour) and resized to the classifier's input side with RoIAlign.

    >>> rescorer = CropRescorer.from_checkpoint("runs/recipe/classifier/best.pt", num_classes=10)
    >>> rescorer.bind(["0", "1", ...])                  # detector label k -> classifier class
    >>> detections = rescorer(images, detections)        # eval-format dicts, new scores, re-sorted
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.ops import roi_align

from classify.base.paths import require_file
from classify.models.registry import get_model_entry
from detect.data.crops import BACKGROUND, DEFAULT_CONTEXT


@dataclass(frozen=True)
class RescorerSpec:
    """What builds the refinement classifier without its file: ``model`` (a ``classify`` registry
    name), its ``class_names`` (output order), ``size`` (square input side, px) and the crop
    ``context`` (margin as a fraction of the box side)."""

    model: str
    class_names: tuple[str, ...]
    size: int
    context: float = DEFAULT_CONTEXT

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RescorerSpec:
        return cls(str(values["model"]), tuple(values["class_names"]), int(values["size"]),
                   float(values.get("context", DEFAULT_CONTEXT)))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "class_names": list(self.class_names)}


class CropRescorer(nn.Module):
    """Rescores eval-format detections with ``classifier`` (see the module docstring).

    Args:
        classifier: ``Tensor[N, 3, size, size]`` (normalised with its registry entry's mean/std)
            -> logits ``[N, len(spec.class_names)]``; kept frozen and in eval mode.
        spec: the classifier's architecture, classes, input side and crop context.
        num_classes: the detector's classes; :meth:`bind` maps them to the classifier's.
        weight: exponent of the classifier's probability in the new score (0: unchanged scores).
        min_score: detections scoring below this are dropped rather than cropped (they would
            rank last either way; most of a detector's 100 boxes an image are such).
    """

    def __init__(self, classifier: nn.Module, spec: RescorerSpec, num_classes: int,
                 weight: float = 0.35, min_score: float = 0.01) -> None:
        super().__init__()
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"rescore weight must be in [0, 1], got {weight}")
        self.classifier = classifier.eval().requires_grad_(False)
        self.spec, self.weight, self.min_score = spec, float(weight), float(min_score)
        entry = get_model_entry(spec.model)
        self.register_buffer("mean", torch.tensor(entry.mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(entry.std, dtype=torch.float32).view(1, -1, 1, 1))
        # detector label -> classifier column; -1 until bind() (saved with the detector's weights)
        self.register_buffer("class_map", torch.full((num_classes,), -1, dtype=torch.long))

    @classmethod
    def from_checkpoint(cls, source: str | Path | Mapping[str, Any], num_classes: int,
                        weight: float = 0.35, min_score: float = 0.01) -> CropRescorer:
        """From a ``classify train`` checkpoint file, or from a :class:`RescorerSpec` dict (random
        weights, to be replaced by a detector checkpoint's)."""
        from classify.models.registry import get_model

        if isinstance(source, Mapping):
            spec = RescorerSpec.from_dict(source)
            classifier = get_model(spec.model, num_classes=len(spec.class_names))
        else:
            from classify.base.checkpoint import load_checkpoint
            from classify.inspect.viz import model_from_checkpoint

            path = Path(source)
            require_file(path, "rescoring classifier checkpoint")
            ckpt = load_checkpoint(path)
            classifier, name = model_from_checkpoint(ckpt, path)
            size = ckpt.config.get("image_size")
            if not ckpt.class_names or not isinstance(size, int):
                raise ValueError(f"{path}: a rescoring classifier needs a 'classify train' checkpoint "
                                 f"(class names and config image_size); got class names "
                                 f"{ckpt.class_names[:3]} and image_size {size!r}")
            spec = RescorerSpec(name, tuple(ckpt.class_names), size)
        return cls(classifier, spec, num_classes, weight, min_score)

    def bind(self, class_names: Sequence[str]) -> None:
        """Map the detector's labels to the classifier's classes by name (every detector class
        needs one; the classifier's extra classes, e.g. ``background``, only take probability)."""
        if len(class_names) != len(self.class_map):
            raise ValueError(f"rescorer: {len(class_names)} class names for a {len(self.class_map)}-class detector")
        missing = [name for name in class_names if name not in self.spec.class_names]
        if missing:
            raise ValueError(f"rescorer: the classifier has no class {missing[0]!r} of the detector "
                             f"(its classes: {list(self.spec.class_names)}); train it on this "
                             f"dataset's crops (detect data crops)")
        self.class_map.copy_(torch.tensor([self.spec.class_names.index(n) for n in class_names]))

    def train(self, mode: bool = True) -> CropRescorer:
        super().train(mode)
        self.classifier.eval()  # frozen: its batch-norm statistics are the classifier's
        return self

    def crops(self, image: Tensor, boxes: Tensor) -> Tensor:
        """``image`` float ``[3, H, W]`` in [0, 1], ``boxes`` ``[K, 4]`` xyxy px -> normalised
        ``[K, 3, size, size]`` square crops (outside the image: its mean colour)."""
        fill = image.mean(dim=(1, 2), keepdim=True)
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        half = (boxes[:, 2:] - boxes[:, :2]).amax(dim=1, keepdim=True) * (0.5 + self.spec.context)
        windows = torch.cat([centre - half, centre + half], dim=1)
        size = self.spec.size
        cut = roi_align((image - fill)[None], [windows], (size, size), spatial_scale=1.0,
                        sampling_ratio=-1, aligned=True) + fill[None]
        return (cut.clamp(0, 1) - self.mean) / self.std

    @torch.no_grad()
    def forward(self, images: Sequence[Tensor], detections: Sequence[Mapping[str, Tensor]]) -> list[dict[str, Tensor]]:
        """Per image ``{"boxes": [K, 4] xyxy px, "scores": [K], "labels": [K] 0-based}`` -> the
        same with the refined scores, best first (detections under ``min_score`` dropped)."""
        if bool((self.class_map < 0).any()):
            raise RuntimeError("rescorer: call bind(class_names) before rescoring (the detector's "
                               "labels are not mapped to the classifier's classes)")
        kept = [{k: v[d["scores"] >= self.min_score] for k, v in d.items()} for d in detections]
        batch = [self.crops(image, d["boxes"]) for image, d in zip(images, kept)]
        counts = [len(c) for c in batch]
        if not sum(counts):
            return kept
        probs = self.classifier(torch.cat(batch)).softmax(dim=1).split(counts)
        out = []
        for d, p in zip(kept, probs):
            own = p[torch.arange(len(p), device=p.device), self.class_map[d["labels"]]]
            scores = d["scores"] ** (1 - self.weight) * own ** self.weight
            order = scores.argsort(descending=True)
            out.append({**{k: v[order] for k, v in d.items()}, "scores": scores[order]})
        return out

    def extra_repr(self) -> str:
        return (f"model={self.spec.model!r}, size={self.spec.size}, weight={self.weight}, "
                f"min_score={self.min_score}, background={BACKGROUND in self.spec.class_names}")
