"""The settings of the digit-scenes benchmark (:mod:`detect.data.scenes`): :class:`SceneConfig`
and its named presets. Torch-free, so the command line builds its flags instantly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from classify.base.config import check_fields, from_preset, param
from classify.data.digits import DIGIT_SOURCES


@dataclass(frozen=True)
class SceneConfig:
    """Everything that determines a digit-scenes dataset. Lengths in pixels.

    Attributes:
        image_size: side of the square images.
        num_train, num_val, num_test: images per split.
        min_objects, max_objects: digits per image, inclusive range.
        min_digit_height, max_digit_height: upright digit height before rotation, sampled
            log-uniformly; ``max_digit_height <= image_size / 2``.
        max_iou: largest box IoU allowed between two digits of an image.
        max_occlusion: largest fraction of a digit's ink that later digits may cover.
        max_rotation: digits are rotated by up to this many degrees either way.
        max_shear: horizontal shear factor up to this either way.
        max_aspect_jitter: width is scaled by ``exp(u)``, ``|u| <= max_aspect_jitter``.
        background_strength: 0 gives flat gradients, 1 full texture (noise fields, stripes,
            blurred shapes).
        noise_std: std of the Gaussian pixel noise, 0-255 units (per image up to this).
        min_distractors, max_distractors: non-digit strokes per image, inclusive range.
        min_contrast: least luma difference between an ink colour and the local background.
        jpeg_quality: quality of the written JPEG files, 1-100.
        sources: digit sources, see :data:`classify.data.digits.DIGIT_SOURCES`.
        split_fractions: shares of the handwritten samples given to train, val, test.
        seed: the root seed, a non-negative integer.
    """

    image_size: int = param(320, ge=32, le=4096, help="side of the square images, px")
    num_train: int = param(2000, ge=0, help="training images")
    num_val: int = param(300, ge=0, help="validation images")
    num_test: int = param(500, ge=0, help="test images")
    min_objects: int = param(2, ge=1, help="fewest digits per image")
    max_objects: int = param(8, ge=1, help="most digits per image")
    min_digit_height: int = param(10, ge=6, help="smallest upright digit height, px")
    max_digit_height: int = param(150, ge=6, help="largest upright digit height, px (<= image_size / 2)")
    max_iou: float = param(0.3, ge=0.0, le=1.0, help="largest box IoU between two digits")
    max_occlusion: float = param(0.3, ge=0.0, le=1.0, help="largest share of a digit's ink covered by others")
    max_rotation: float = param(15.0, ge=0.0, le=45.0, help="rotation up to this many degrees either way")
    max_shear: float = param(0.2, ge=0.0, le=0.5, help="horizontal shear factor up to this either way")
    max_aspect_jitter: float = param(0.15, ge=0.0, le=0.5, help="log width-scale jitter")
    background_strength: float = param(1.0, ge=0.0, le=1.0, help="0 flat gradients, 1 full texture")
    noise_std: float = param(8.0, ge=0.0, le=64.0, help="Gaussian pixel noise std, 0-255 units")
    min_distractors: int = param(2, ge=0, help="fewest non-digit strokes per image")
    max_distractors: int = param(8, ge=0, help="most non-digit strokes per image")
    min_contrast: float = param(60.0, ge=0.0, le=200.0, help="least luma difference ink vs background")
    jpeg_quality: int = param(90, ge=1, le=100, help="JPEG quality")
    sources: tuple[str, ...] = param(DIGIT_SOURCES, choices=DIGIT_SOURCES, help="digit sources")
    split_fractions: tuple[float, float, float] = param((0.7, 0.1, 0.2), gt=0.0, help="train/val/test shares")
    seed: int = param(0, ge=0, help="root random seed")

    def __post_init__(self) -> None:
        check_fields(self)
        for low, high in (("min_objects", "max_objects"), ("min_digit_height", "max_digit_height"),
                          ("min_distractors", "max_distractors")):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"SceneConfig.{low}={getattr(self, low)} is greater than "
                                 f"SceneConfig.{high}={getattr(self, high)}; expected {low} <= {high}")
        if 2 * self.max_digit_height > self.image_size:
            raise ValueError(f"SceneConfig.max_digit_height={self.max_digit_height} does not fit "
                             f"image_size={self.image_size}; expected max_digit_height <= "
                             f"image_size / 2 = {self.image_size // 2}")
        if not self.sources:
            raise ValueError(f"SceneConfig.sources: expected a non-empty tuple drawn from {DIGIT_SOURCES}")
        if abs(sum(self.split_fractions) - 1.0) > 1e-6:
            raise ValueError(f"SceneConfig.split_fractions: expected 3 positive numbers summing to 1, "
                             f"got {self.split_fractions}")

    def num_images(self, split: str) -> int:
        """Images in ``split`` (``train``, ``val`` or ``test``)."""
        return {"train": self.num_train, "val": self.num_val, "test": self.num_test}[split]


PRESETS: dict[str, SceneConfig] = {
    "tiny": SceneConfig(image_size=128, num_train=12, num_val=4, num_test=4, max_objects=6,
                        min_digit_height=8, max_digit_height=60, min_distractors=1,
                        max_distractors=4),
    "default": SceneConfig(),
    "large": SceneConfig(image_size=416, num_train=10000, num_val=1000, num_test=2000,
                         max_objects=12, max_digit_height=200, min_distractors=3,
                         max_distractors=12),
}


def scene_config(preset: str = "default", **overrides: Any) -> SceneConfig:
    """The preset ``preset`` with ``overrides`` applied, e.g. ``scene_config("tiny", seed=3)``."""
    return from_preset(PRESETS, preset, "scene", **overrides)
