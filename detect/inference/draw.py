"""Annotated images: boxes coloured by class (or by track id when tracked), with the class name,
the score and the track id, drawn by ``supervision``'s annotators."""

from __future__ import annotations

import cv2
import numpy as np

from detect.inference.detections import Detections


def label_text(detections: Detections, show_scores: bool = True) -> list[str]:
    """``"#7 cat 0.91"``-style labels, one a detection (track id only when tracked)."""
    texts = []
    for i, name in enumerate(detections.names):
        parts = [] if detections.track_ids is None else [f"#{int(detections.track_ids[i])}"]
        parts.append(name)
        if show_scores:
            parts.append(f"{float(detections.scores[i]):.2f}")
        texts.append(" ".join(parts))
    return texts


def draw_detections(image: np.ndarray, detections: Detections, *, show_scores: bool = True,
                    thickness: int | None = None) -> np.ndarray:
    """A copy of ``image`` (``uint8[H, W, 3]`` RGB) with ``detections`` drawn on it.

    Colours follow the class (the same class is the same colour in every image) or, when the
    detections carry track ids, the track. Line width and text size follow the image size.
    """
    import supervision as sv

    if len(detections) == 0:
        return image.copy()
    height, width = image.shape[:2]
    side = max(height, width)
    thickness = thickness or max(1, round(side / 400))
    lookup = sv.ColorLookup.CLASS if detections.track_ids is None else sv.ColorLookup.TRACK
    sv_dets = sv.Detections(xyxy=detections.boxes.astype(np.float64), confidence=detections.scores,
                            class_id=detections.labels,
                            tracker_id=None if detections.track_ids is None else detections.track_ids)
    scene = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)  # supervision draws OpenCV (BGR) images
    scene = sv.BoxAnnotator(thickness=thickness, color_lookup=lookup).annotate(scene, sv_dets)
    scene = sv.LabelAnnotator(color_lookup=lookup, text_scale=max(0.35, side / 1600), text_padding=max(2, side // 200),
                              smart_position=True).annotate(scene, sv_dets, labels=label_text(detections, show_scores))
    return cv2.cvtColor(scene, cv2.COLOR_BGR2RGB)
