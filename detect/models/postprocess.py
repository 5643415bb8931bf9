"""Post-processing settings of a detector: the score threshold, the NMS IoU threshold and the
number of detections kept an image.

Part of the Detector contract (docs/design.md): every registered detector has a method
``configure_postprocess(score_threshold=None, nms_threshold=None, max_detections=None)``
(``None`` keeps the current value) and ``postprocess_settings() -> PostprocessSettings``.  The
``Predictor``, ``detect predict`` and the service set them through :func:`configure_postprocess`,
never through a family's own attribute names.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class PostprocessSettings:
    """``score_threshold``: detections scoring at or below it are dropped before NMS;
    ``nms_threshold``: IoU above which the per-class NMS suppresses a box; ``max_detections``:
    the best detections kept an image."""

    score_threshold: float
    nms_threshold: float
    max_detections: int


def check_settings(score_threshold: float | None, nms_threshold: float | None,
                   max_detections: int | None) -> None:
    """Raise ``ValueError`` for a threshold outside [0, 1] or a non-positive detection count."""
    for name, value in (("score threshold", score_threshold), ("NMS IoU threshold", nms_threshold)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}: expected a number in [0, 1], got {value}")
    if max_detections is not None and max_detections <= 0:
        raise ValueError(f"max detections: expected a positive integer, got {max_detections}")


def configure_postprocess(model: nn.Module, *, score_threshold: float | None = None,
                          nms_threshold: float | None = None, max_detections: int | None = None) -> PostprocessSettings:
    """Set ``model``'s post-processing (``None`` keeps a value) and return the settings in force.

    Raises:
        ValueError: a value out of range, or a model without the contract's methods.
    """
    check_settings(score_threshold, nms_threshold, max_detections)
    if not hasattr(model, "configure_postprocess"):
        raise ValueError(f"{type(model).__name__} does not follow the Detector contract: it has no "
                         "configure_postprocess(score_threshold, nms_threshold, max_detections) method")
    model.configure_postprocess(score_threshold=score_threshold, nms_threshold=nms_threshold,
                                max_detections=max_detections)
    return model.postprocess_settings()


class RoIHeadsPostprocess:
    """The contract's two methods for models whose ``roi_heads`` is torchvision's ``RoIHeads``
    (``score_thresh``, ``nms_thresh``, ``detections_per_img``); mixed into those detectors."""

    def _roi_heads(self) -> nn.Module:
        return self.roi_heads  # type: ignore[attr-defined]

    def configure_postprocess(self, score_threshold: float | None = None, nms_threshold: float | None = None,
                              max_detections: int | None = None) -> None:
        heads = self._roi_heads()
        if score_threshold is not None:
            heads.score_thresh = float(score_threshold)
        if nms_threshold is not None:
            heads.nms_thresh = float(nms_threshold)
        if max_detections is not None:
            heads.detections_per_img = int(max_detections)

    def postprocess_settings(self) -> PostprocessSettings:
        heads = self._roi_heads()
        return PostprocessSettings(float(heads.score_thresh), float(heads.nms_thresh), int(heads.detections_per_img))
