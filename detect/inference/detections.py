"""What the ``Predictor`` returns for one image or video frame: :class:`Detections`.

Boxes are ``xyxy`` in absolute pixels of the original image (the project's one convention,
docs/design.md); ``xywh``, ``xyxyn`` and ``xywhn`` are views computed from them. Arrays are NumPy
(on the CPU), so a result can be drawn, written or serialised without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: the stages a detection's time is split into, in order
STAGES = ("decode", "preprocess", "model", "postprocess")


@dataclass
class Timing:
    """Seconds spent on one image in each stage.

    ``decode``: reading the file into pixels (0 for video frames, which the video reader decodes in
    its own thread while the model runs); ``preprocess``: pixels to the model's input
    tensor on its device; ``model``: the detector's forward (its own resize, normalisation and NMS
    included), the batch's time shared equally by its images, the device synchronised;
    ``postprocess``: back to the CPU, class filter, tracking.
    """

    decode: float = 0.0
    preprocess: float = 0.0
    model: float = 0.0
    postprocess: float = 0.0

    @property
    def total(self) -> float:
        return self.decode + self.preprocess + self.model + self.postprocess

    def as_dict(self) -> dict[str, float]:
        """Milliseconds by stage and in total, rounded to microseconds."""
        values = {stage: getattr(self, stage) for stage in STAGES} | {"total": self.total}
        return {f"{k}_ms": round(v * 1000, 3) for k, v in values.items()}


@dataclass
class Detections:
    """The detections of one image (or one video frame).

    Attributes:
        boxes: ``float32[N, 4]`` xyxy, absolute pixels of the original image.
        scores: ``float32[N]``, in decreasing order.
        labels: ``int64[N]``, 0-based indices into ``class_names``.
        class_names: every class the model predicts (not only those found).
        image_size: ``(width, height)`` of the original image in pixels.
        source: where the image came from (a path, ``"video.mp4"``, ``"<array 0>"``...).
        frame: 0-based frame index in a video, ``None`` for an image.
        timestamp: the frame's time in the video, seconds; ``None`` for an image.
        track_ids: ``int64[N]`` persistent ids from a tracker, ``None`` when not tracked.
        timing: seconds by stage (:class:`Timing`).
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: Sequence[str]
    image_size: tuple[int, int]
    source: str = ""
    frame: int | None = None
    timestamp: float | None = None
    track_ids: np.ndarray | None = None
    timing: Timing = field(default_factory=Timing)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if self.track_ids is not None:
            self.track_ids = np.asarray(self.track_ids, dtype=np.int64).reshape(-1)
        counts = {len(self.boxes), len(self.scores), len(self.labels)}
        if self.track_ids is not None:
            counts.add(len(self.track_ids))
        if len(counts) != 1:
            raise ValueError(f"{self.source}: boxes, scores, labels (and track ids) must have one row a detection; "
                             f"got {len(self.boxes)}, {len(self.scores)}, {len(self.labels)}")

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def names(self) -> list[str]:
        """The class name of each detection."""
        return [self.class_names[int(k)] for k in self.labels]

    @property
    def xywh(self) -> np.ndarray:
        """``float32[N, 4]`` top-left x, y, width, height in pixels (COCO's ``bbox``)."""
        out = self.boxes.copy()
        out[:, 2:] -= out[:, :2]
        return out

    @property
    def xyxyn(self) -> np.ndarray:
        """``float32[N, 4]`` xyxy divided by the image's width and height."""
        return self.boxes / self._scale()

    @property
    def xywhn(self) -> np.ndarray:
        """``float32[N, 4]`` centre x, centre y, width, height divided by the image size (YOLO txt)."""
        x1, y1, x2, y2 = self.boxes.T
        cxcywh = np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=1)
        return cxcywh / self._scale()

    def _scale(self) -> np.ndarray:
        width, height = self.image_size
        return np.array([width, height, width, height], dtype=np.float32)

    def select(self, keep: np.ndarray) -> Detections:
        """A copy holding the detections ``keep`` selects (a boolean mask or indices)."""
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep], self.class_names,
                          self.image_size, self.source, self.frame, self.timestamp,
                          None if self.track_ids is None else self.track_ids[keep], self.timing)

    def to_dict(self, decimals: int = 2) -> dict[str, Any]:
        """A JSON-ready record: the source (and frame index, timestamp), the image size, timing in
        ms and one ``{"box": [x1, y1, x2, y2], "score", "label", "name"[, "track_id"]}`` a detection
        (box in pixels rounded to ``decimals``)."""
        record: dict[str, Any] = {"source": self.source}
        if self.frame is not None:
            record["frame"] = self.frame
            record["timestamp"] = None if self.timestamp is None else round(self.timestamp, 6)
        width, height = self.image_size
        record.update(width=width, height=height, timing=self.timing.as_dict(), detections=[])
        for i in range(len(self)):
            item = {"box": [round(float(v), decimals) for v in self.boxes[i]], "score": round(float(self.scores[i]), 5),
                    "label": int(self.labels[i]), "name": self.class_names[int(self.labels[i])]}
            if self.track_ids is not None:
                item["track_id"] = int(self.track_ids[i])
            record["detections"].append(item)
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any], class_names: Sequence[str]) -> Detections:
        """The detections of a :meth:`to_dict` record (a line of ``predictions.jsonl``), timing
        not kept; ``class_names`` are the model's (labels index them)."""
        items = record["detections"]
        tracked = bool(items) and all("track_id" in item for item in items)
        return cls(boxes=[item["box"] for item in items], scores=[item["score"] for item in items],
                   labels=[item["label"] for item in items], class_names=class_names,
                   image_size=(record["width"], record["height"]), source=record.get("source", ""),
                   frame=record.get("frame"), timestamp=record.get("timestamp"),
                   track_ids=[item["track_id"] for item in items] if tracked else None)
