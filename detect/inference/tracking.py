"""Persistent object ids across video frames: ByteTrack (Zhang et al., 2022) from the ``trackers``
library (Roboflow, Apache-2.0), used as a library.

ByteTrack associates the confident detections of a frame with the existing tracks first (Kalman
prediction + IoU, Hungarian matching), then the low-scoring ones with the tracks left over, which
keeps a track alive through an occlusion. So the detector should run at a low score threshold
(``detector_conf``) and the tracker decides what starts a track (``activation``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detect.inference.detections import Detections


@dataclass(frozen=True)
class TrackerConfig:
    """ByteTrack's settings.

    Attributes:
        detector_conf: score threshold the detector runs at while tracking (low: the second
            association stage uses the weak detections).
        high_conf: detections scoring at least this take part in the first association stage.
        activation: a detection scoring at least this can start a new track.
        min_frames: frames a new track must be matched in before it gets an id.
        lost_frames: frames a track is kept without a match (at the video's frame rate).
        min_iou: the least IoU of a detection with a track's predicted box to match it.
    """

    detector_conf: float = 0.1
    high_conf: float = 0.5
    activation: float = 0.6
    min_frames: int = 2
    lost_frames: int = 30
    min_iou: float = 0.1


class Tracker:
    """ByteTrack over one video: :meth:`update` takes a frame's detections and returns those that
    belong to a track, with ``track_ids`` set (ids start at ``first_id`` and are never reused).

    ``first_id`` lets a run resumed mid-video start a fresh tracker whose ids continue above the
    ones already written (the tracks of before the resume point are not carried over).
    """

    def __init__(self, config: TrackerConfig | None = None, frame_rate: float = 30.0, first_id: int = 0) -> None:
        from trackers import ByteTrackTracker

        self.config = config or TrackerConfig()
        self.first_id = first_id
        c = self.config
        self._tracker = ByteTrackTracker(lost_track_buffer=c.lost_frames, frame_rate=frame_rate,
                                         track_activation_threshold=c.activation, minimum_consecutive_frames=c.min_frames,
                                         minimum_iou_threshold=c.min_iou, high_conf_det_threshold=c.high_conf)

    def update(self, detections: Detections) -> Detections:
        """The detections of the next frame that are matched to a track, with their ``track_ids``.

        Detections the tracker does not (yet) follow are dropped; boxes, scores and labels are the
        detector's (not the Kalman filter's), in the detector's order.
        """
        import supervision as sv

        tracked = self._tracker.update(sv.Detections(xyxy=detections.boxes.astype(np.float64).reshape(-1, 4),
                                                     confidence=detections.scores.astype(np.float64),
                                                     class_id=np.arange(len(detections))))
        ids = np.full(len(detections), -1, dtype=np.int64)
        if len(tracked):
            ids[np.asarray(tracked.class_id, dtype=np.int64)] = np.asarray(tracked.tracker_id, dtype=np.int64)
        keep = ids >= 0  # the library's ids count from 0; -1: not (yet) a track
        result = detections.select(keep)
        result.track_ids = ids[keep] + self.first_id
        return result
