"""Checking an exported detector against the eager model it came from.

:func:`compare_detections` pairs the two lists of detections image by image (same label, nearest
box; detections whose scores differ by float rounding may swap places in the sorted output) and
reports the counts, whether the labels agree and the largest box and score differences.
:func:`synthetic_image` is the seeded test picture ``detect export`` runs both models on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["BOX_TOLERANCE", "SCORE_TOLERANCE", "Parity", "compare_detections", "synthetic_image"]

#: relative box tolerance (plus 1e-2 px) and absolute score tolerance of an agreement
BOX_TOLERANCE = 1e-3
SCORE_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Parity:
    """How closely exported detections follow the eager ones (see :func:`compare_detections`)."""

    images: int
    eager_detections: int
    exported_detections: int
    counts_agree: bool
    labels_agree: bool
    max_box_difference: float
    max_relative_box_difference: float
    max_score_difference: float

    @property
    def agree(self) -> bool:
        """Same counts and labels, boxes within :data:`BOX_TOLERANCE`, scores within :data:`SCORE_TOLERANCE`."""
        return (self.counts_agree and self.labels_agree and self.max_relative_box_difference <= BOX_TOLERANCE
                and self.max_score_difference <= SCORE_TOLERANCE)

    def summary(self) -> str:
        counts = (f"{self.exported_detections} detections (eager {self.eager_detections})" if not self.counts_agree
                  else f"{self.exported_detections} detections both")
        labels = "labels agree" if self.labels_agree else "LABELS DIFFER"
        return (f"{counts}; {labels}; largest box difference {self.max_box_difference:.2e} px, largest score "
                f"difference {self.max_score_difference:.2e}")


def _pairs(reference: dict[str, Tensor], exported: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Greedy pairing: each reference detection, best first, takes the unpaired exported one of
    the same label with the nearest box (L-infinity), or none."""
    ref_boxes, out_boxes = reference["boxes"].float(), exported["boxes"].float().to(reference["boxes"].device)
    if not len(ref_boxes) or not len(out_boxes):
        return torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)
    distance = torch.cdist(ref_boxes, out_boxes, p=float("inf"))
    distance[reference["labels"][:, None] != exported["labels"].to(reference["labels"].device)[None, :]] = float("inf")
    rows, cols = [], []
    for i in range(len(ref_boxes)):
        j = int(distance[i].argmin())
        if torch.isfinite(distance[i, j]):
            rows.append(i)
            cols.append(j)
            distance[:, j] = float("inf")
    return torch.tensor(rows, dtype=torch.int64), torch.tensor(cols, dtype=torch.int64)


def compare_detections(reference: Sequence[dict[str, Tensor]], exported: Sequence[dict[str, Tensor]]) -> Parity:
    """Compare per-image detections of the eager model (``reference``) and the exported file."""
    if len(reference) != len(exported):
        raise ValueError(f"expected detections for the same images, got {len(reference)} and {len(exported)}")
    counts = labels = True
    box = relative = score = 0.0
    for ref, out in zip(reference, exported):
        counts &= len(ref["boxes"]) == len(out["boxes"])
        rows, cols = _pairs(ref, out)
        labels &= len(rows) == len(ref["boxes"]) == len(out["boxes"])
        if len(rows):
            a, b = ref["boxes"][rows].float().cpu(), out["boxes"][cols].float().cpu()
            difference = (a - b).abs()
            box = max(box, float(difference.max()))
            relative = max(relative, float(((difference - 1e-2).clamp(min=0) / a.abs().clamp(min=1e-6)).max()))
            score = max(score, float((ref["scores"][rows].float().cpu() - out["scores"][cols].float().cpu()).abs().max()))
    return Parity(len(reference), sum(len(r["boxes"]) for r in reference), sum(len(o["boxes"]) for o in exported),
                  counts, labels, box, relative, score)


def synthetic_image(height: int, width: int, seed: int = 0) -> Tensor:
    """A seeded ``float32[3, height, width]`` picture in [0, 1]: a colour gradient, coloured
    rectangles and discs, and a little noise."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, height).view(1, -1, 1)
    x = torch.linspace(0, 1, width).view(1, 1, -1)
    base = torch.rand(3, 1, 1, generator=generator)
    image = (0.3 + 0.4 * base * y + 0.3 * (1 - base) * x).expand(3, height, width).clone()
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    for k in range(8):
        colour = torch.rand(3, 1, generator=generator)
        cy, cx = float(torch.rand((), generator=generator)) * height, float(torch.rand((), generator=generator)) * width
        half = 0.05 + 0.15 * float(torch.rand((), generator=generator))
        hy, hx = half * height, half * width
        if k % 2:
            mask = ((yy - cy) / hy) ** 2 + ((xx - cx) / hx) ** 2 <= 1
        else:
            mask = ((yy - cy).abs() <= hy) & ((xx - cx).abs() <= hx)
        image[:, mask] = colour
    image += 0.02 * torch.randn(image.shape, generator=generator)
    return image.clamp(0, 1)
