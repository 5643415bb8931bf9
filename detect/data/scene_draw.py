"""Drawing primitives of the digit scenes, still (:mod:`detect.data.scenes`) and moving
(:mod:`detect.data.video_scenes`): textured backgrounds, handwritten digits as tight alpha
patches, ink colours, distractor strokes and alpha compositing.

Torch-free (numpy and OpenCV only). Every function draws from the ``numpy.random.Generator`` it
is given, in a fixed order, so a caller's output is determined by its seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

CLASS_NAMES = tuple(str(d) for d in range(10))
ALPHA_MIN = 0.1  # ink alpha below this is cut to 0; a box is the bbox of alpha > 0


# --------------------------------------------------------------------------- backgrounds


def _upsampled_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth random field ``float32 [size, size, 3]`` in about [-0.5, 0.5]."""
    low = rng.random((cells, cells, 3), dtype=np.float32) - 0.5
    return cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)


def _coordinate_ramp(rng: np.random.Generator, size: int) -> np.ndarray:
    """``float32 [size, size]`` projection of pixel positions on a random direction, in [0, 1]."""
    theta = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    ramp = xx * np.float32(np.cos(theta)) + yy * np.float32(np.sin(theta))
    return (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)


def _blurred_shapes(rng: np.random.Generator, canvas: np.ndarray) -> np.ndarray:
    """``canvas`` with a few random filled shapes blended in and blurred."""
    size = canvas.shape[0]
    layer = canvas.copy()
    for _ in range(int(rng.integers(2, 8))):
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        cx, cy = (int(v) for v in rng.integers(0, size, 2))
        r = int(rng.integers(size // 12, size // 3))
        if rng.random() < 0.5:
            axes = (r, int(r * rng.uniform(0.3, 1.0)))
            cv2.ellipse(layer, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
        else:
            cv2.rectangle(layer, (cx - r, cy - r // 2), (cx + r, cy + r // 2), colour, -1)
    sigma = float(rng.uniform(2.0, max(3.0, size / 20)))
    layer = cv2.GaussianBlur(layer, (0, 0), sigma)
    mix = np.float32(rng.uniform(0.3, 0.8))
    return canvas * (1 - mix) + layer * mix


def make_background(rng: np.random.Generator, size: int, strength: float) -> np.ndarray:
    """A tinted, textured background ``float32 [size, size, 3]``, RGB in 0-255.

    A two-colour gradient, plus (scaled by ``strength`` in [0, 1]) coarse and fine smooth
    noise fields, stripes, and blurred random shapes.
    """
    c0, c1 = rng.uniform(20, 235, (2, 3)).astype(np.float32)
    t = _coordinate_ramp(rng, size)[..., None]
    canvas = c0 * (1 - t) + c1 * t
    s = np.float32(strength)
    canvas += s * rng.uniform(40, 120) * _upsampled_noise(rng, size, int(rng.integers(2, 8)))
    canvas += s * rng.uniform(5, 30) * _upsampled_noise(rng, size, max(8, size // 6))
    if rng.random() < 0.4:
        period = rng.uniform(size / 12, size / 2)
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * _coordinate_ramp(rng, size) * size / period + phase)
        canvas += s * rng.uniform(10, 40) * wave[..., None] * rng.uniform(0.3, 1.0, 3).astype(
            np.float32)
    if strength > 0 and rng.random() < 0.6:
        canvas = (1 - s) * canvas + s * _blurred_shapes(rng, canvas)
    return np.clip(canvas, 0, 255).astype(np.float32)


# --------------------------------------------------------------------------- digit geometry


def _ink_crop(src: np.ndarray) -> np.ndarray:
    """``float32`` crop of ``src`` (uint8, bright ink) to its ink, scaled to peak 1."""
    peak = float(src.max())
    assert peak > 0, "blank source digit"
    ys, xs = np.nonzero(src > 0.1 * peak)
    crop = src[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float32)
    return crop / peak


def _trim(alpha: np.ndarray) -> np.ndarray:
    """``alpha`` with values below ``ALPHA_MIN`` zeroed, cropped to the tight bbox of the rest."""
    alpha = np.clip(alpha, 0.0, 1.0)
    alpha[alpha < ALPHA_MIN] = 0.0
    ys, xs = np.nonzero(alpha)
    assert ys.size > 0, "transform erased all ink"
    return np.ascontiguousarray(alpha[ys.min():ys.max() + 1, xs.min():xs.max() + 1])


def _sharpen(alpha: np.ndarray, upscale: float) -> np.ndarray:
    """Smoothstep contrast curve on ``alpha``: upscaled low-resolution strokes get crisp,
    anti-aliased edges instead of a wide blurry halo; downscaled strokes are kept thick."""
    low, high = (0.2, 0.6) if upscale > 1.5 else (0.05, 0.5)
    t = np.clip((alpha - np.float32(low)) / np.float32(high - low), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _rotate_shear(alpha: np.ndarray, degrees: float, shear: float) -> np.ndarray:
    """``alpha`` rotated by ``degrees`` and sheared horizontally by ``shear``, nothing cut off."""
    h, w = alpha.shape
    rad = math.radians(degrees)
    rot = np.array([[math.cos(rad), -math.sin(rad)], [math.sin(rad), math.cos(rad)]])
    lin = rot @ np.array([[1.0, shear], [0.0, 1.0]])
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], dtype=np.float64) @ lin.T
    low, high = corners.min(0), corners.max(0)
    out_w, out_h = (int(math.ceil(v)) + 2 for v in high - low)
    matrix = np.hstack([lin, (1.0 - low)[:, None]])
    return cv2.warpAffine(alpha, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def shape_digit(rng: np.random.Generator, src: np.ndarray, height: int, *, max_rotation: float,
                max_shear: float, max_aspect_jitter: float, max_side: int) -> np.ndarray:
    """A source digit (``uint8 [h, w]``, bright ink) as a tight alpha patch ``float32 [H, W]``.

    The ink crop is scaled to ``height`` px (width scaled by ``exp(u)``,
    ``|u| <= max_aspect_jitter``), rotated by up to ``max_rotation`` degrees and sheared by up
    to ``max_shear`` either way; the patch is at most ``max_side`` px on each side, holds
    values in ``{0} U [ALPHA_MIN, 1]`` and has ink on all four borders.
    """
    crop = _ink_crop(src)
    h, w = crop.shape
    aspect = math.exp(rng.uniform(-max_aspect_jitter, max_aspect_jitter))
    fy = height / h
    fx = fy * aspect
    # a zero margin keeps the interpolation from replicating edge ink into flat cut-offs
    pad = 2
    padded = np.pad(crop, pad)
    size = (max(1, int(round((w + 2 * pad) * fx))), max(1, int(round((h + 2 * pad) * fy))))
    interp = cv2.INTER_AREA if fy < 1 else cv2.INTER_CUBIC
    alpha = _sharpen(cv2.resize(padded, size, interpolation=interp), fy)
    degrees = rng.uniform(-max_rotation, max_rotation)
    shear = rng.uniform(-max_shear, max_shear)
    alpha = _trim(_rotate_shear(alpha, degrees, shear))
    if max(alpha.shape) > max_side:
        scale = max_side / max(alpha.shape)
        size = (max(1, int(alpha.shape[1] * scale)), max(1, int(alpha.shape[0] * scale)))
        alpha = _trim(cv2.resize(alpha, size, interpolation=cv2.INTER_AREA))
    return alpha


# --------------------------------------------------------------------------- colours and compositing


def luma(rgb: np.ndarray) -> float:
    """The luma (ITU-R BT.601) of one RGB colour."""
    return float(rgb[0] * 0.299 + rgb[1] * 0.587 + rgb[2] * 0.114)


def ink_colour(rng: np.random.Generator, background: np.ndarray, min_contrast: float) -> np.ndarray:
    """An RGB ink colour (``float32 [3]``, 0-255) whose luma differs from the mean of
    ``background`` (``[h, w, 3]``) by at least ``min_contrast`` where possible."""
    bg_luma = luma(background.reshape(-1, 3).mean(0))
    colour = rng.uniform(0, 255, 3)
    for _ in range(16):
        if abs(luma(colour) - bg_luma) >= min_contrast:
            return colour.astype(np.float32)
        colour = rng.uniform(0, 255, 3)
    target = 0.0 if bg_luma > 127.5 else 255.0
    return (target + (colour - target) * 0.25).astype(np.float32)


def composite(canvas: np.ndarray, alpha: np.ndarray, colour: np.ndarray, x0: int, y0: int) -> None:
    """Paint ``colour`` over ``canvas`` (``float32 [H, W, 3]``, in place) with opacity ``alpha``
    (``[h, w]``) at top-left ``(x0, y0)``; the patch must lie inside the canvas."""
    h, w = alpha.shape
    region = canvas[y0:y0 + h, x0:x0 + w]
    a = alpha[..., None]
    region *= 1.0 - a
    region += a * colour


# --------------------------------------------------------------------------- distractor strokes


@dataclass(frozen=True)
class StrokeSpec:
    """One distractor stroke: its ``kind`` (one of :data:`STROKE_KINDS`), ``centre`` ``(x, y)``
    and ``scale`` in px, and whether it is ``thin`` (1 px, drawn over digits)."""

    kind: str
    centre: tuple[float, float]
    scale: float
    thin: bool


STROKE_KINDS = ("curve", "line", "arc", "scribble", "blob")


def _bezier(points: np.ndarray, n: int = 32) -> np.ndarray:
    """``int32 [n, 2]`` points of the Bezier curve with control ``points`` ``[k, 2]``."""
    t = np.linspace(0.0, 1.0, n)[:, None, None]
    pts = np.broadcast_to(points.astype(np.float64), (n, *points.shape))
    while pts.shape[1] > 1:  # de Casteljau
        pts = pts[:, :-1] * (1 - t) + pts[:, 1:] * t
    return np.rint(pts[:, 0]).astype(np.int32)


def stroke_mask(rng: np.random.Generator, spec: StrokeSpec, size: int) -> np.ndarray:
    """``uint8 [size, size]`` anti-aliased mask of one distractor."""
    mask = np.zeros((size, size), np.uint8)
    c, s = np.asarray(spec.centre), spec.scale
    thick = 1 if spec.thin else max(1, int(round(s * rng.uniform(0.04, 0.12))))
    if spec.kind == "curve":
        pts = _bezier(c + rng.uniform(-0.8, 0.8, (4, 2)) * s)
        cv2.polylines(mask, [pts], False, 255, thick, cv2.LINE_AA)
    elif spec.kind == "line":
        d = np.array([math.cos(a := rng.uniform(0, np.pi)), math.sin(a)]) * s * rng.uniform(1, 2)
        p, q = np.rint(c - d).astype(int), np.rint(c + d).astype(int)
        cv2.line(mask, tuple(int(v) for v in p), tuple(int(v) for v in q), 255, thick, cv2.LINE_AA)
    elif spec.kind == "arc":
        axes = (max(2, int(s * rng.uniform(0.2, 0.6))), max(2, int(s * rng.uniform(0.2, 0.6))))
        start = float(rng.uniform(0, 360))
        cv2.ellipse(mask, tuple(int(v) for v in c), axes, float(rng.uniform(0, 180)), start,
                    start + float(rng.uniform(60, 200)), 255, thick, cv2.LINE_AA)
    elif spec.kind == "scribble":
        steps = rng.normal(0, s * 0.25, (int(rng.integers(4, 10)), 2))
        pts = np.rint(c + np.cumsum(steps, axis=0)).astype(np.int32)
        cv2.polylines(mask, [pts], False, 255, thick, cv2.LINE_AA)
    else:  # blob: an irregular filled polygon, small
        r = max(2.0, s * rng.uniform(0.05, 0.25))
        ang = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(5, 9))))
        rad = r * rng.uniform(0.5, 1.0, ang.size)
        pts = np.rint(c + np.stack([np.cos(ang) * rad, np.sin(ang) * rad], 1)).astype(np.int32)
        cv2.fillPoly(mask, [pts], 255, cv2.LINE_AA)
    return mask


def draw_stroke(canvas: np.ndarray, rng: np.random.Generator, spec: StrokeSpec,
                min_contrast: float) -> None:
    """Draw one distractor on the square ``canvas`` (``float32 [S, S, 3]``, in place) in an ink
    colour that contrasts with the background under it."""
    size = canvas.shape[0]
    mask = stroke_mask(rng, spec, size)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return
    y1, y2, x1, x2 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    colour = ink_colour(rng, canvas[y1:y2, x1:x2], min_contrast)
    alpha = mask[y1:y2, x1:x2].astype(np.float32) / 255.0
    composite(canvas, alpha, colour, int(x1), int(y1))
