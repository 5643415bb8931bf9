"""The settings of the digit-scenes videos (:mod:`detect.data.video_scenes`): :class:`VideoConfig`
and its named presets. Torch-free and OpenCV-free, so the command line builds its flags instantly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from classify.base.config import check_fields, from_preset, param
from classify.data.digits import DIGIT_SOURCES, SPLIT_NAMES

#: codec name -> (file suffix, OpenCV fourcc): what OpenCV's FFmpeg writes here (it has no H.264 encoder)
CODECS: dict[str, tuple[str, str]] = {
    "mp4v": (".mp4", "mp4v"),
    "mjpg": (".avi", "MJPG"),
    "xvid": (".avi", "XVID"),
    "vp80": (".webm", "VP80"),
    "vp90": (".webm", "VP90"),
}


@dataclass(frozen=True)
class VideoConfig:
    """Everything that determines a digit-scenes video and its ground truth. Lengths in pixels,
    times in frames.

    Attributes:
        width, height: frame size.
        frames: length of the clip.
        fps: frame rate written in the video and in ``seqinfo.ini``.
        objects: digits in view at a time: the clip starts with this many inside the frame, and
            a digit that leaves is replaced by one entering through a border.
        entry_delay: mean wait (frames, geometric) before a replacement enters; 0 enters at once.
        aim: share of the digits (at the start, and entering) whose heading is set to meet a
            digit already in view, were both to go straight; the others head anywhere (inwards).
        min_digit_height, max_digit_height: upright digit height before rotation, sampled
            log-uniformly; ``max_digit_height <= min(width, height) / 2``.
        min_speed, max_speed: speed in px/frame, sampled log-uniformly per digit.
        turn_std: the heading turns by a normal step of this many degrees each frame (a slow,
            random turn); 0 moves in straight lines.
        jitter: std (px) of a per-frame offset of the drawn position (not accumulated).
        pan_speed: the background pans this many px/frame back and forth over a larger canvas
            (0: a static background).
        max_rotation, max_shear, max_aspect_jitter: digit style, as in the still scenes.
        background_strength: 0 gives flat gradients, 1 full texture.
        noise_std: std of the Gaussian pixel noise, 0-255 units (one level per video, up to this).
        min_distractors, max_distractors: static non-digit strokes on the background.
        min_contrast: least luma difference between an ink colour and the mean background.
        sources: digit sources, see :data:`classify.data.digits.DIGIT_SOURCES`.
        split: whose handwriting the digits are: that split of the samples, split as the
            digit-scenes dataset of seed ``split_seed`` splits them (``test`` by default: writing
            no detector trained on that dataset has seen).
        split_seed, split_fractions: the ``seed`` and ``split_fractions`` of that dataset.
        seed: the root seed of the video, a non-negative integer.
    """

    width: int = param(640, ge=32, le=4096, help="frame width, px")
    height: int = param(480, ge=32, le=4096, help="frame height, px")
    frames: int = param(600, ge=1, le=10_000_000, help="frames in the clip")
    fps: float = param(30.0, gt=0.0, le=1000.0, help="frame rate")
    objects: int = param(8, ge=1, le=1000, help="digits in view at a time (one enters after one leaves)")
    entry_delay: float = param(10.0, ge=0.0, help="mean frames before a digit replaces one that left")
    aim: float = param(0.7, ge=0.0, le=1.0, help="share of digits set on a course that meets another digit")
    min_digit_height: int = param(16, ge=6, help="smallest upright digit height, px")
    max_digit_height: int = param(80, ge=6, help="largest upright digit height, px (<= min(width, height) / 2)")
    min_speed: float = param(1.0, gt=0.0, help="slowest speed, px/frame")
    max_speed: float = param(4.0, gt=0.0, help="fastest speed, px/frame")
    turn_std: float = param(1.0, ge=0.0, le=45.0, help="heading random-walk step, degrees/frame")
    jitter: float = param(0.3, ge=0.0, le=16.0, help="std of the drawn position's per-frame jitter, px")
    pan_speed: float = param(0.25, ge=0.0, le=16.0, help="background pan, px/frame (0: static)")
    max_rotation: float = param(15.0, ge=0.0, le=45.0, help="rotation up to this many degrees either way")
    max_shear: float = param(0.2, ge=0.0, le=0.5, help="horizontal shear factor up to this either way")
    max_aspect_jitter: float = param(0.15, ge=0.0, le=0.5, help="log width-scale jitter")
    background_strength: float = param(1.0, ge=0.0, le=1.0, help="0 flat gradients, 1 full texture")
    noise_std: float = param(6.0, ge=0.0, le=64.0, help="Gaussian pixel noise std, 0-255 units")
    min_distractors: int = param(2, ge=0, help="fewest static non-digit strokes")
    max_distractors: int = param(8, ge=0, help="most static non-digit strokes")
    min_contrast: float = param(60.0, ge=0.0, le=200.0, help="least luma difference ink vs background")
    sources: tuple[str, ...] = param(DIGIT_SOURCES, choices=DIGIT_SOURCES, help="digit sources")
    split: str = param("test", choices=SPLIT_NAMES, help="whose handwriting: this split of the samples")
    split_seed: int = param(0, ge=0, help="seed of the digit-scenes dataset whose split is meant")
    split_fractions: tuple[float, float, float] = param((0.7, 0.1, 0.2), gt=0.0,
                                                        help="train/val/test shares of that dataset")
    seed: int = param(0, ge=0, help="root random seed of the video")

    def __post_init__(self) -> None:
        check_fields(self)
        for low, high in (("min_digit_height", "max_digit_height"), ("min_speed", "max_speed"),
                          ("min_distractors", "max_distractors")):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"VideoConfig.{low}={getattr(self, low)} is greater than "
                                 f"VideoConfig.{high}={getattr(self, high)}; expected {low} <= {high}")
        side = min(self.width, self.height)
        if 2 * self.max_digit_height > side:
            raise ValueError(f"VideoConfig.max_digit_height={self.max_digit_height} does not fit a "
                             f"{self.width}x{self.height} frame; expected max_digit_height <= "
                             f"min(width, height) / 2 = {side // 2}")
        if not self.sources:
            raise ValueError(f"VideoConfig.sources: expected a non-empty tuple drawn from {DIGIT_SOURCES}")
        if abs(sum(self.split_fractions) - 1.0) > 1e-6:
            raise ValueError(f"VideoConfig.split_fractions: expected 3 positive numbers summing to 1, "
                             f"got {self.split_fractions}")


PRESETS: dict[str, VideoConfig] = {
    "tiny": VideoConfig(width=160, height=120, frames=40, objects=4, entry_delay=3.0, min_digit_height=12,
                        max_digit_height=36, min_speed=2.0, max_speed=5.0, min_distractors=1,
                        max_distractors=3),
    "small": VideoConfig(width=320, height=240, frames=300, objects=6, min_digit_height=12, max_digit_height=60,
                         min_speed=0.8, max_speed=3.0),
    "default": VideoConfig(),
}


def video_config(preset: str = "default", **overrides: Any) -> VideoConfig:
    """The preset ``preset`` with ``overrides`` applied, e.g. ``video_config("tiny", seed=3)``."""
    return from_preset(PRESETS, preset, "video", **overrides)
