"""Digit-scenes videos: handwritten digits that move, enter, leave, cross and hide each other, with
exact ground-truth tracks in MOTChallenge format.

The digits, canvases and styles are those of the still scenes (:mod:`detect.data.scene_draw`):
real handwritten digits (the ``split`` of the samples, disjoint from the digit-scenes training
set of the same ``split_seed``) alpha-composited in a contrasting ink colour on a textured,
tinted background with static distractor strokes, then Gaussian pixel noise. Each digit keeps its
shape and colour for its whole track and moves at a constant speed along a heading that turns
slowly at random, its drawn position jittered a little each frame. The clip starts with
``objects`` digits in view; when one has left through a border, a new one enters through a border
after a random delay. A share ``aim`` of the digits set out on a course that meets another digit
(so that tracks cross far more often than at random). Digits are drawn in a fixed z-order (a
random depth each), so crossing digits occlude each other. The background pans slowly back and
forth (``pan_speed``).

Ground truth, exact from what was drawn (a digit's ink is its alpha patch, values in
``{0} U [ALPHA_MIN, 1]``):

* box: the tight box of the digit's ink pixels *inside the frame* (occluded ink included,
  as for the still scenes and MOT's boxes), ``xyxy`` in the project's continuous pixels
  (columns ``a..b`` -> ``x1 = a, x2 = b + 1``); a digit with no ink pixel inside the frame has
  no row.
* visibility: the share of the digit's ink weight that shows: ``sum(a_i * prod_j (1 - a_j))``
  over its in-frame pixels, ``j`` the digits drawn above it, divided by the ``sum(a_i)`` of its
  whole patch, so that both occlusion and cut-off by a border lower it (MOT's visibility).
  A digit wholly covered by others keeps its row with visibility 0 (MOT convention: occluded
  objects are annotated); ``conf`` is always 1.
* track ids: 1, 2, ... in the order of first appearance; ``class`` = digit + 1.
* pixels count from 0, as the detectors' boxes do: ``bb_left = x1``, ``bb_width = x2 - x1``
  (MOTChallenge's own files count from 1). A tracker's ``tracks.txt`` must use the same
  convention (write the detector's ``xyxy`` boxes as ``x1, y1, x2 - x1, y2 - y1``), else every
  box is off by a pixel.

Every video is determined by its :class:`~detect.data.video_config.VideoConfig`; the first ``n``
frames do not depend on ``frames``. Frames are rendered and written one at a time (memory does
not grow with the clip). Torch-free: numpy and OpenCV.

Output of :func:`write_video` (MOTChallenge's sequence layout)::

    OUT/video.mp4        the clip (OpenCV ``mp4v``; ``.avi`` for mjpg/xvid, ``.webm`` for vp80/vp90)
    OUT/gt/gt.txt        frame,id,bb_left,bb_top,bb_width,bb_height,conf,class,visibility
    OUT/seqinfo.ini      [Sequence] name, imDir, frameRate, seqLength, imWidth, imHeight, imExt
    OUT/labels.txt       the class names, one a line ("0" .. "9": class k + 1 is labels[k])
    OUT/stats.json       tracks, rows, visibility, crossings, occlusions ...
    OUT/video_config.json  the resolved config
    OUT/img1/000001.jpg  ... with ``images=True`` only
"""

from __future__ import annotations

import configparser
import io
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from classify.data.digits import DigitBank, load_digit_sources, split_bank
from detect.data.scene_draw import (
    CLASS_NAMES,
    STROKE_KINDS,
    StrokeSpec,
    composite,
    draw_stroke,
    ink_colour,
    make_background,
    shape_digit,
)
from detect.data.video_config import CODECS, VideoConfig

__all__ = ["CODECS", "FrameObject", "VideoFrame", "VideoRenderer", "VideoSummary", "gt_row", "is_written",
           "open_writer", "video_bank", "write_video"]

SEQUENCE_NAME = "digit-scenes"
_NOISE_FIELDS = 4  # pre-drawn noise fields; each frame takes a random window of one
_NOISE_MARGIN = 16
_PAN_FRACTION = 0.15  # the panned canvas is this much larger than the frame (each axis)
_ENTRY_SPREAD = math.radians(60)  # entering headings: the inward normal +- this
_STREAMS = {"scene": 0, "digits": 1}  # the background; the digits, their motion and the noise


# --------------------------------------------------------------------------- frames and objects


@dataclass(frozen=True, eq=False)
class FrameObject:
    """One digit as drawn in one frame (only digits with ink inside the frame).

    Attributes:
        track_id: 1-based identity, constant over the digit's track.
        label: digit class 0-9.
        box: ``(x1, y1, x2, y2)``, the tight box of the digit's ink pixels inside the frame.
        visibility: visible share of the digit's whole ink weight, in [0, 1].
        covered: share of its in-frame ink weight covered by the digits drawn above it.
        alpha: ``float32 [h, w]`` the digit's whole ink patch (the same array every frame).
        x0, y0: frame position of the patch's top-left pixel (negative or past the border when
            the digit is cut off).
    """

    track_id: int
    label: int
    box: tuple[float, float, float, float]
    visibility: float
    covered: float
    alpha: np.ndarray
    x0: int
    y0: int

    def mask(self, width: int, height: int) -> np.ndarray:
        """``float32 [height, width]``: the digit's own alpha on the frame, before occlusion."""
        out = np.zeros((height, width), np.float32)
        h, w = self.alpha.shape
        fx1, fy1, fx2, fy2 = max(self.x0, 0), max(self.y0, 0), min(self.x0 + w, width), min(self.y0 + h, height)
        if fx2 > fx1 and fy2 > fy1:
            out[fy1:fy2, fx1:fx2] = self.alpha[fy1 - self.y0:fy2 - self.y0, fx1 - self.x0:fx2 - self.x0]
        return out


@dataclass(frozen=True, eq=False)
class VideoFrame:
    """One rendered frame.

    Attributes:
        index: 1-based frame number (MOT's).
        image: ``uint8 [H, W, 3]`` RGB.
        objects: the digits with ink in the frame, in drawing order (later ones on top).
    """

    index: int
    image: np.ndarray
    objects: tuple[FrameObject, ...]


def gt_row(frame: int, obj: FrameObject) -> str:
    """``obj`` as a MOTChallenge ground-truth line (no newline)."""
    x1, y1, x2, y2 = obj.box
    return (f"{frame},{obj.track_id},{x1:g},{y1:g},{x2 - x1:g},{y2 - y1:g},1,{obj.label + 1},"
            f"{obj.visibility:.4f}")


# --------------------------------------------------------------------------- the renderer


@dataclass(eq=False)
class _Digit:
    """A digit while it is on stage."""

    label: int
    alpha: np.ndarray
    ink: float  # sum of alpha over the whole patch
    colour: np.ndarray
    depth: float
    cx: float
    cy: float
    speed: float
    heading: float
    track_id: int = 0  # given when it first has ink inside the frame


@dataclass(eq=False)
class _Placed:
    """A digit's patch clipped to the frame in one frame."""

    digit: _Digit
    x0: int
    y0: int
    fx1: int
    fy1: int
    fx2: int
    fy2: int
    clip: np.ndarray  # alpha[fy1 - y0:fy2 - y0, fx1 - x0:fx2 - x0]
    visible: np.ndarray | None = None  # the clip times (1 - alpha) of the digits above, made on demand

    def covered_by(self, top: _Placed) -> bool:
        """Cover this digit's visible ink with ``top``'s alpha; whether ink overlapped ink."""
        x1, y1, x2, y2 = max(self.fx1, top.fx1), max(self.fy1, top.fy1), min(self.fx2, top.fx2), min(self.fy2, top.fy2)
        if x2 <= x1 or y2 <= y1:
            return False
        mine = (slice(y1 - self.fy1, y2 - self.fy1), slice(x1 - self.fx1, x2 - self.fx1))
        theirs = top.clip[y1 - top.fy1:y2 - top.fy1, x1 - top.fx1:x2 - top.fx1]
        if not (self.clip[mine] * theirs).any():
            return False
        if self.visible is None:
            self.visible = self.clip.copy()
        self.visible[mine] *= 1.0 - theirs
        return True


def video_bank(config: VideoConfig, bank: DigitBank | None = None) -> DigitBank:
    """The digits ``config`` draws from: its ``split`` of ``bank`` (all of ``config.sources``
    loaded when None), split as the digit-scenes dataset of seed ``split_seed`` splits it."""
    bank = load_digit_sources(config.sources) if bank is None else bank
    return split_bank(bank, config.split_fractions, config.split_seed)[config.split]


class VideoRenderer:
    """Renders the frames of ``config`` one at a time: ``for frame in VideoRenderer(config): ...``.

    Args:
        config: the video.
        bank: the digits to draw from, already the split's (see :func:`video_bank`); computed
            from ``config`` when None.

    Iterating yields :class:`VideoFrame` objects, frame 1 first; each iteration starts the clip
    over and gives the same frames. :meth:`background` is the frame without digits or noise.
    Attributes after an iteration: ``crossings`` (pairs of digits whose boxes start to overlap)
    and ``occlusions`` (pairs whose ink starts to overlap, the upper one covering the lower).
    """

    def __init__(self, config: VideoConfig, bank: DigitBank | None = None) -> None:
        if not isinstance(config, VideoConfig):
            raise TypeError(f"config: expected a VideoConfig, got {type(config).__name__}")
        self.config = config
        self.bank = video_bank(config) if bank is None else bank
        if len(self.bank) == 0:
            raise ValueError(f"the {config.split!r} digit bank is empty")
        self.crossings = 0
        self.occlusions = 0
        rng = self._rng("scene")
        w, h = config.width, config.height
        margin = 0 if config.pan_speed == 0 else math.ceil(_PAN_FRACTION * max(w, h))
        side = max(w, h) + margin
        canvas = make_background(rng, side, config.background_strength)
        for _ in range(int(rng.integers(config.min_distractors, config.max_distractors + 1))):
            kind = STROKE_KINDS[int(rng.integers(len(STROKE_KINDS)))]
            centre = tuple(float(v) for v in rng.uniform(0, side, 2))
            scale = math.exp(rng.uniform(math.log(8), math.log(max(9.0, min(w, h) * 0.4))))
            draw_stroke(canvas, rng, StrokeSpec(kind, centre, scale, False), config.min_contrast)
        self._canvas = canvas
        self._pan_room = (side - w, side - h)
        theta = rng.uniform(0, 2 * math.pi)
        self._pan_step = (config.pan_speed * math.cos(theta), config.pan_speed * math.sin(theta))
        self._pan_start = tuple(float(v) for v in rng.uniform(0, 1, 2))
        sigma = np.float32(config.noise_std * rng.uniform(0.4, 1.0))
        self._noise = None
        if sigma > 0:
            shape = (_NOISE_FIELDS, h + _NOISE_MARGIN, w + _NOISE_MARGIN, 3)
            self._noise = rng.standard_normal(shape, dtype=np.float32) * sigma
        self._mean_colour = canvas.reshape(-1, 3).mean(0)

    def _rng(self, stream: str) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, _STREAMS[stream]])

    # ----------------------------------------------------------------- background

    def _pan_offset(self, index: int) -> tuple[int, int]:
        """Integer top-left of the frame's window on the canvas at 1-based frame ``index``."""
        out = []
        for room, step, start in zip(self._pan_room, self._pan_step, self._pan_start):
            if room == 0:
                out.append(0)
                continue
            pos = start * 2 * room + step * (index - 1)
            pos = math.fmod(pos, 2 * room)
            pos = pos + 2 * room if pos < 0 else pos
            out.append(round(room - abs(pos - room)))  # back and forth in [0, room]
        return out[0], out[1]

    def background(self, index: int) -> np.ndarray:
        """``float32 [H, W, 3]`` RGB background of 1-based frame ``index`` (no digits, no noise)."""
        ox, oy = self._pan_offset(index)
        return self._canvas[oy:oy + self.config.height, ox:ox + self.config.width].copy()

    # ----------------------------------------------------------------- digits

    def _new_digit(self, rng: np.random.Generator, inside: bool) -> _Digit:
        c = self.config
        w, h = c.width, c.height
        index = int(rng.integers(len(self.bank)))
        height = math.exp(rng.uniform(math.log(c.min_digit_height), math.log(c.max_digit_height + 1)))
        alpha = shape_digit(rng, self.bank.images[index], int(height), max_rotation=c.max_rotation,
                            max_shear=c.max_shear, max_aspect_jitter=c.max_aspect_jitter,
                            max_side=min(w, h) - 2)
        colour = ink_colour(rng, self._mean_colour[None, None], c.min_contrast)
        speed = math.exp(rng.uniform(math.log(c.min_speed), math.log(c.max_speed)))
        depth = float(rng.random())
        ph, pw = alpha.shape
        if inside:
            cx = float(rng.uniform(pw / 2, w - pw / 2))
            cy = float(rng.uniform(ph / 2, h - ph / 2))
            heading = float(rng.uniform(0, 2 * math.pi))
        else:  # just outside a border (chosen by length), heading inwards
            u = float(rng.uniform(0, 2 * (w + h)))
            spread = float(rng.uniform(-_ENTRY_SPREAD, _ENTRY_SPREAD))
            if u < w:  # top
                cx, cy, heading = u, -ph / 2, math.pi / 2 + spread
            elif u < 2 * w:  # bottom
                cx, cy, heading = u - w, h + ph / 2, -math.pi / 2 + spread
            elif u < 2 * w + h:  # left
                cx, cy, heading = -pw / 2, u - 2 * w, spread
            else:  # right
                cx, cy, heading = w + pw / 2, u - 2 * w - h, math.pi + spread
        return _Digit(label=int(self.bank.labels[index]), alpha=alpha, ink=float(alpha.sum()), colour=colour,
                      depth=depth, cx=cx, cy=cy, speed=speed, heading=heading)

    def _aim(self, d: _Digit, target: _Digit) -> None:
        """Turn ``d`` towards the point where it meets ``target`` (both on straight courses),
        if they can meet inside the frame; else leave its heading as it is."""
        dx, dy = target.cx - d.cx, target.cy - d.cy
        vx, vy = target.speed * math.cos(target.heading), target.speed * math.sin(target.heading)
        # |D + V t| = s t  ->  (V.V - s^2) t^2 + 2 (D.V) t + D.D = 0, the earliest t > 0
        a, b, c = vx * vx + vy * vy - d.speed ** 2, 2 * (dx * vx + dy * vy), dx * dx + dy * dy
        if abs(a) < 1e-9:
            roots = [-c / b] if abs(b) > 1e-9 else []
        else:
            disc = b * b - 4 * a * c
            roots = [] if disc < 0 else [(-b - math.sqrt(disc)) / (2 * a), (-b + math.sqrt(disc)) / (2 * a)]
        times = [t for t in roots if t > 0]
        if not times:
            return
        t = min(times)
        mx, my = target.cx + vx * t, target.cy + vy * t
        if 0 <= mx <= self.config.width and 0 <= my <= self.config.height:
            d.heading = math.atan2(my - d.cy, mx - d.cx)

    def _gone(self, d: _Digit) -> bool:
        """Wholly outside the frame and moving away from it."""
        ph, pw = d.alpha.shape
        margin = 3 * self.config.jitter + 1
        vx, vy = math.cos(d.heading), math.sin(d.heading)
        return ((d.cx + pw / 2 < -margin and vx <= 0) or (d.cx - pw / 2 > self.config.width + margin and vx >= 0)
                or (d.cy + ph / 2 < -margin and vy <= 0) or (d.cy - ph / 2 > self.config.height + margin and vy >= 0))

    def _place(self, d: _Digit, rng: np.random.Generator) -> _Placed | None:
        c = self.config
        ph, pw = d.alpha.shape
        jx, jy = rng.normal(0.0, c.jitter, 2) if c.jitter > 0 else (0.0, 0.0)
        x0 = math.floor(d.cx + jx - pw / 2 + 0.5)
        y0 = math.floor(d.cy + jy - ph / 2 + 0.5)
        fx1, fy1, fx2, fy2 = max(x0, 0), max(y0, 0), min(x0 + pw, c.width), min(y0 + ph, c.height)
        if fx2 <= fx1 or fy2 <= fy1:
            return None
        clip = d.alpha[fy1 - y0:fy2 - y0, fx1 - x0:fx2 - x0]
        return _Placed(d, x0, y0, fx1, fy1, fx2, fy2, clip)

    # ----------------------------------------------------------------- the clip

    def __iter__(self) -> Iterator[VideoFrame]:
        c = self.config
        rng = self._rng("digits")
        self.crossings = self.occlusions = 0
        next_id = 1
        enter_p = 1.0 / (1.0 + c.entry_delay)
        turn = math.radians(c.turn_std)
        stage: list[_Digit] = []
        for _ in range(c.objects):
            d = self._new_digit(rng, inside=True)
            if stage and rng.random() < c.aim:
                self._aim(d, stage[int(rng.integers(len(stage)))])
            stage.append(d)
        stage.sort(key=lambda d: d.depth)
        boxes_before: set[tuple[int, int]] = set()
        ink_before: set[tuple[int, int]] = set()
        for index in range(1, c.frames + 1):
            if index > 1:
                in_view = [d for d in stage if d.track_id]
                for _ in range(c.objects - len(stage)):
                    if rng.random() < enter_p:
                        d = self._new_digit(rng, inside=False)
                        if in_view and rng.random() < c.aim:
                            self._aim(d, in_view[int(rng.integers(len(in_view)))])
                        stage.append(d)
                stage.sort(key=lambda d: d.depth)
            placed = [p for p in (self._place(d, rng) for d in stage) if p is not None and p.clip.any()]
            image = self._draw(index, placed, rng)
            for p in placed:
                if p.digit.track_id == 0:
                    p.digit.track_id, next_id = next_id, next_id + 1
            ink_now: set[tuple[int, int]] = set()
            for i, p in enumerate(placed):
                for top in placed[i + 1:]:
                    if p.covered_by(top):
                        ink_now.add((p.digit.track_id, top.digit.track_id))
            objects = []
            for p in placed:
                d = p.digit
                cols = np.flatnonzero(p.clip.any(axis=0))
                rows = np.flatnonzero(p.clip.any(axis=1))
                box = (float(p.fx1 + cols[0]), float(p.fy1 + rows[0]), float(p.fx1 + cols[-1] + 1),
                       float(p.fy1 + rows[-1] + 1))
                if p.visible is None:
                    shown, covered = float(p.clip.sum()), 0.0
                else:
                    shown = float(p.visible.sum())
                    covered = max(0.0, 1.0 - shown / float(p.clip.sum()))
                objects.append(FrameObject(d.track_id, d.label, box, min(1.0, shown / d.ink), covered, d.alpha,
                                           p.x0, p.y0))
            boxes_now: set[tuple[int, int]] = set()
            for i, a in enumerate(objects):
                for b in objects[i + 1:]:
                    if min(a.box[2], b.box[2]) > max(a.box[0], b.box[0]) and \
                            min(a.box[3], b.box[3]) > max(a.box[1], b.box[1]):
                        boxes_now.add((min(a.track_id, b.track_id), max(a.track_id, b.track_id)))
            self.crossings += len(boxes_now - boxes_before)
            self.occlusions += len(ink_now - ink_before)
            boxes_before, ink_before = boxes_now, ink_now
            yield VideoFrame(index, image, tuple(objects))
            for d in stage:  # move
                d.heading += float(rng.normal(0.0, turn)) if turn > 0 else 0.0
                d.cx += d.speed * math.cos(d.heading)
                d.cy += d.speed * math.sin(d.heading)
            stage = [d for d in stage if not self._gone(d)]

    def _draw(self, index: int, placed: list[_Placed], rng: np.random.Generator) -> np.ndarray:
        frame = self.background(index)
        for p in placed:
            composite(frame, p.clip, p.digit.colour, p.fx1, p.fy1)
        if self._noise is not None:
            k, ox, oy = (int(v) for v in rng.integers(0, (_NOISE_FIELDS, _NOISE_MARGIN, _NOISE_MARGIN)))
            frame += self._noise[k, oy:oy + self.config.height, ox:ox + self.config.width]
        np.clip(frame, 0, 255, out=frame)
        frame += 0.5
        return frame.astype(np.uint8)


# --------------------------------------------------------------------------- writing


@dataclass
class VideoSummary:
    """What :func:`write_video` wrote: the folder, its files and the statistics of ``stats.json``."""

    out: Path
    video: Path
    gt: Path
    stats: dict = field(default_factory=dict)
    reused: bool = False
    seconds: float = 0.0

    @property
    def frames_per_second(self) -> float:
        """Frames drawn, encoded and annotated a second in this run (0 when reused)."""
        return self.stats["frames"] / self.seconds if self.seconds > 0 else 0.0


class _Stats:
    """Streaming statistics of the rows written."""

    def __init__(self) -> None:
        self.rows = 0
        self.vis_sum = 0.0
        self.vis_min = 1.0
        self.below_one = self.below_half = self.zero = self.occluded = self.cut = 0
        self.max_in_view = 0
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self.label: dict[int, int] = {}

    def add(self, frame: VideoFrame, width: int, height: int) -> None:
        self.max_in_view = max(self.max_in_view, len(frame.objects))
        for o in frame.objects:
            self.rows += 1
            self.vis_sum += o.visibility
            self.vis_min = min(self.vis_min, o.visibility)
            self.below_one += o.visibility < 1.0
            self.below_half += o.visibility < 0.5
            self.zero += o.visibility == 0.0
            self.occluded += o.covered > 0.0
            h, w = o.alpha.shape
            cut = o.x0 < 0 or o.y0 < 0 or o.x0 + w > width or o.y0 + h > height
            self.cut += cut
            self.first.setdefault(o.track_id, frame.index)
            self.last[o.track_id] = frame.index
            self.label[o.track_id] = o.label

    def to_dict(self, config: VideoConfig, renderer: VideoRenderer, codec: str, video: str) -> dict:
        lengths = np.array([self.last[t] - self.first[t] + 1 for t in self.first], dtype=np.int64)
        per_class = np.bincount(np.array(list(self.label.values()), dtype=np.int64), minlength=len(CLASS_NAMES))
        return {
            "video": video,
            "codec": codec,
            "frames": config.frames,
            "width": config.width,
            "height": config.height,
            "fps": config.fps,
            "objects": config.objects,
            "tracks": len(self.first),
            "rows": self.rows,
            "objects_per_frame": {"mean": self.rows / config.frames, "max": self.max_in_view},
            "track_length": {"min": int(lengths.min()) if lengths.size else 0,
                             "mean": float(lengths.mean()) if lengths.size else 0.0,
                             "max": int(lengths.max()) if lengths.size else 0},
            "tracks_entering": sum(f > 1 for f in self.first.values()),
            "tracks_leaving": sum(f < config.frames for f in self.last.values()),
            "visibility": {"mean": self.vis_sum / self.rows if self.rows else 0.0,
                           "min": self.vis_min if self.rows else 0.0,
                           "rows_below_1": self.below_one, "rows_below_0.5": self.below_half,
                           "rows_0": self.zero},
            "rows_occluded": self.occluded,
            "rows_cut_by_border": self.cut,
            "crossings": renderer.crossings,
            "occlusions": renderer.occlusions,
            "tracks_per_class": {name: int(n) for name, n in zip(CLASS_NAMES, per_class)},
        }


def _seqinfo(config: VideoConfig, video: str, codec: str) -> str:
    parser = configparser.ConfigParser()
    parser.optionxform = str  # MOT's keys are camel case
    parser["Sequence"] = {"name": SEQUENCE_NAME, "imDir": "img1", "frameRate": f"{config.fps:g}",
                          "seqLength": str(config.frames), "imWidth": str(config.width),
                          "imHeight": str(config.height), "imExt": ".jpg"}
    parser["Video"] = {"file": video, "codec": codec}
    text = io.StringIO()
    parser.write(text, space_around_delimiters=False)
    return text.getvalue()


def _config_json(config: VideoConfig, codec: str, images: bool) -> dict:
    return {**json.loads(json.dumps(asdict(config))), "codec": codec, "images": images}


def _outputs(out: Path) -> list[Path]:
    """The files and folders this writer owns under ``out``."""
    names = ["gt", "img1", "seqinfo.ini", "labels.txt", "stats.json", "video_config.json"]
    names += sorted({"video" + suffix for suffix, _ in CODECS.values()})
    return [out / n for n in names]


def is_written(out: Path | str, config: VideoConfig, codec: str = "mp4v", images: bool = False) -> bool:
    """True when ``out`` holds a complete video of exactly ``config`` in ``codec``."""
    out = Path(out)
    stamp = out / "video_config.json"
    needed = [stamp, out / "stats.json", out / "gt" / "gt.txt", out / "seqinfo.ini",
              out / ("video" + CODECS[codec][0])]
    if not all(p.is_file() for p in needed):
        return False
    try:
        return json.loads(stamp.read_text()) == _config_json(config, codec, images)
    except ValueError:
        return False


@contextmanager
def _stderr_silenced(silence: bool) -> Iterator[None]:
    """Point file descriptor 2 at /dev/null while the block runs (when ``silence``): OpenCV's
    FFmpeg backend prints that the VP8/VP9 fourcc tags are no WebM tags straight to the C
    stderr, then writes those codecs all the same."""
    if not silence:
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def open_writer(path: Path, codec: str, fps: float, width: int, height: int) -> cv2.VideoWriter:
    """An opened ``cv2.VideoWriter`` of ``codec`` (a key of :data:`CODECS`); ``OSError`` if it
    does not open."""
    if codec not in CODECS:
        raise ValueError(f"codec: expected one of {sorted(CODECS)}, got {codec!r}")
    with _stderr_silenced(CODECS[codec][0] == ".webm"):
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*CODECS[codec][1]), float(fps), (width, height))
    if not writer.isOpened():
        raise OSError(f"OpenCV could not open a {codec} video writer for {path}")
    return writer


def write_video(config: VideoConfig, out: Path | str, codec: str = "mp4v", *, images: bool = False,
                force: bool = False, progress: bool = True, bank: DigitBank | None = None) -> VideoSummary:
    """Render ``config`` to ``out`` in MOTChallenge's layout (see the module docstring).

    A folder that already holds this exact video (same config, codec and ``images``) is reused
    unless ``force``; otherwise this writer's files there are replaced (other files are left).

    Args:
        config: the video.
        out: output folder, created if missing.
        codec: a key of :data:`CODECS`.
        images: also write every frame as ``img1/<frame:06d>.jpg`` (quality 95).
        force: render even if ``out`` is up to date.
        progress: show a tqdm progress bar.
        bank: the split's digits (see :func:`video_bank`); computed from ``config`` when None.
    """
    from tqdm.auto import tqdm

    if codec not in CODECS:
        raise ValueError(f"codec: expected one of {sorted(CODECS)}, got {codec!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out}: expected a folder, found a file")
    video_name = "video" + CODECS[codec][0]
    if not force and is_written(out, config, codec, images):
        stats = json.loads((out / "stats.json").read_text())
        return VideoSummary(out, out / video_name, out / "gt" / "gt.txt", stats, reused=True)
    for path in _outputs(out):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    (out / "gt").mkdir(parents=True, exist_ok=True)
    if images:
        (out / "img1").mkdir()
    renderer = VideoRenderer(config, bank)
    start = time.perf_counter()  # the frames: drawing, encoding, gt rows (not loading the digits)
    stats = _Stats()
    writer = open_writer(out / video_name, codec, config.fps, config.width, config.height)
    try:
        with open(out / "gt" / "gt.txt", "w") as gt, \
                tqdm(total=config.frames, desc="digit-scenes video", unit="frame", disable=not progress) as bar:
            for frame in renderer:
                bgr = cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)
                writer.write(bgr)
                if images:
                    cv2.imwrite(str(out / "img1" / f"{frame.index:06d}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
                if frame.objects:
                    gt.write("\n".join(gt_row(frame.index, o) for o in frame.objects) + "\n")
                stats.add(frame, config.width, config.height)
                bar.update(1)
    finally:
        writer.release()
    seconds = time.perf_counter() - start
    summary = stats.to_dict(config, renderer, codec, video_name)
    (out / "labels.txt").write_text("\n".join(CLASS_NAMES) + "\n")
    (out / "seqinfo.ini").write_text(_seqinfo(config, video_name, codec))
    (out / "stats.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "video_config.json").write_text(json.dumps(_config_json(config, codec, images), indent=1) + "\n")
    return VideoSummary(out, out / video_name, out / "gt" / "gt.txt", summary, seconds=seconds)

