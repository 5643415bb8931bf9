"""Tests of the digit-scenes benchmark: real digit sources, disjoint splits, exact boxes."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from classify.data.digits import DigitBank, load_digit_sources, load_opencv_digits, split_bank
from detect.data.scene_config import PRESETS, SceneConfig, scene_config
from detect.data.scenes import CLASS_NAMES, build_scenes, format_statistics, render_scene, scene_banks, scene_statistics
from detect.structures import DatasetSplit, ImageRecord, ObjectAnnotation

TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def bank() -> DigitBank:
    return load_digit_sources()


@pytest.fixture(scope="module")
def tiny_banks(bank: DigitBank) -> dict[str, DigitBank]:
    return scene_banks(TINY, bank)


# --------------------------------------------------------------------------- digit sources


def test_sources_are_real_digits_with_mnist_polarity(bank: DigitBank) -> None:
    assert len(bank) == 10_000
    for origin, shape in (("mnist5k", (28, 28)), ("opencv", (20, 20))):
        idx = [i for i, o in enumerate(bank.origins) if o == origin]
        assert len(idx) == 5000
        assert np.bincount(bank.labels[idx], minlength=10).tolist() == [500] * 10
        images = np.stack([bank.images[i] for i in idx])
        assert images.shape[1:] == shape and images.dtype == np.uint8
        border = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], 1)
        assert border.mean() < 1.0  # dark background
        assert np.median(images.max(axis=(1, 2))) == 255  # bright ink


def test_opencv_digits_are_resized_mnist5k_with_the_same_ids(bank: DigitBank) -> None:
    mnist = {int(i): im for i, im, o in zip(bank.digit_ids, bank.images, bank.origins)
             if o == "mnist5k"}
    for k, (digit_id, image, origin) in enumerate(zip(bank.digit_ids, bank.images, bank.origins)):
        if origin != "opencv" or k % 97:
            continue
        small = cv2.resize(mnist[int(digit_id)], (20, 20), interpolation=cv2.INTER_AREA)
        rmse = np.sqrt(np.mean((small.astype(float) - image) ** 2))
        assert rmse < 10.0, f"opencv digit {digit_id}: rmse {rmse:.1f} to mnist5k"


def test_missing_or_bad_sources_say_what_provides_them(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="opencv-doc"):
        load_opencv_digits(tmp_path / "digits.png")
    wrong = tmp_path / "small.png"
    cv2.imwrite(str(wrong), np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="small.png.*20x20"):
        load_opencv_digits(wrong)
    with pytest.raises(ValueError, match="known.*mnist5k"):
        load_digit_sources(("emnist",))
    with pytest.raises(TypeError, match="sequence"):
        load_digit_sources("opencv")


def test_split_bank_is_disjoint_stratified_and_seeded(bank: DigitBank) -> None:
    parts = split_bank(bank, (0.7, 0.1, 0.2), seed=3)
    ids = {name: set(b.digit_ids.tolist()) for name, b in parts.items()}
    for a, b in itertools.combinations(ids.values(), 2):
        assert not a & b
    assert sum(len(b) for b in parts.values()) == len(bank)
    # 500 samples a class -> 350 / 50 / 100, each rendered by both sources
    for name, per_class in (("train", 700), ("val", 100), ("test", 200)):
        assert np.bincount(parts[name].labels, minlength=10).tolist() == [per_class] * 10
    again = split_bank(bank, (0.7, 0.1, 0.2), seed=3)
    assert np.array_equal(again["test"].digit_ids, parts["test"].digit_ids)
    other = split_bank(bank, (0.7, 0.1, 0.2), seed=4)
    assert not np.array_equal(other["test"].digit_ids, parts["test"].digit_ids)
    with pytest.raises(ValueError, match="fractions.*summing to 1"):
        split_bank(bank, (0.7, 0.2, 0.2))


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(("overrides", "field"), [
    ({"min_objects": 5, "max_objects": 2}, "min_objects"),
    ({"image_size": 64, "max_digit_height": 60, "min_digit_height": 8}, "max_digit_height"),
    ({"num_train": -1}, "num_train"),
    ({"max_iou": 1.5}, "max_iou"),
    ({"jpeg_quality": 0}, "jpeg_quality"),
    ({"min_digit_height": 30, "max_digit_height": 20}, "min_digit_height"),
    ({"split_fractions": (0.5, 0.5, 0.5)}, "split_fractions"),
    ({"sources": ("emnist",)}, "sources"),
])
def test_bad_config_names_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        scene_config("tiny", **overrides)


def test_config_type_errors_and_unknown_names() -> None:
    with pytest.raises(TypeError, match="image_size.*int.*float"):
        SceneConfig(image_size=320.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="did you mean 'num_train'"):
        scene_config("tiny", num_trian=3)
    with pytest.raises(ValueError, match="did you mean 'default'"):
        scene_config("defualt")
    assert scene_config("tiny", seed=5) == SceneConfig(**{**TINY.__dict__, "seed": 5})


# --------------------------------------------------------------------------- rendering


def test_render_is_deterministic_per_image(tiny_banks: dict[str, DigitBank]) -> None:
    a = render_scene(TINY, tiny_banks["train"], "train", 5)
    b = render_scene(TINY, tiny_banks["train"], "train", 5)
    assert a.image.dtype == np.uint8 and a.image.shape == (128, 128, 3)
    assert np.array_equal(a.image, b.image)
    assert a.annotations() == b.annotations()
    c = render_scene(scene_config("tiny", seed=1), tiny_banks["train"], "train", 5)
    assert not np.array_equal(a.image, c.image)
    with pytest.raises(ValueError, match="split.*'train'.*'dev'"):
        render_scene(TINY, tiny_banks["train"], "dev", 0)


def _visible_fraction(masks: np.ndarray, k: int) -> float:
    visible = masks[k] * np.prod(1.0 - masks[k + 1:], axis=0)
    return float(visible.sum() / masks[k].sum())


def test_boxes_are_tight_bboxes_of_pasted_ink(tiny_banks: dict[str, DigitBank]) -> None:
    cfg = TINY
    for split, index in [(s, i) for s in ("train", "val", "test") for i in range(4)]:
        scene = render_scene(cfg, tiny_banks[split], split, index)
        masks = scene.alpha_masks()
        assert cfg.min_objects <= len(scene.digits) <= cfg.max_objects
        for k, digit in enumerate(scene.digits):
            ys, xs = np.nonzero(masks[k])
            tight = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
            assert digit.box == tight, f"{split} {index} object {k}"
            x1, y1, x2, y2 = digit.box
            assert 0 <= x1 < x2 <= cfg.image_size and 0 <= y1 < y2 <= cfg.image_size
            assert masks[k].min() == 0 and masks[k][masks[k] > 0].min() >= 0.1
            assert _visible_fraction(masks, k) >= 1 - cfg.max_occlusion - 1e-5
            assert digit.label == tiny_banks[split].labels[digit.bank_index]


def test_splits_draw_from_disjoint_handwriting(tiny_banks: dict[str, DigitBank]) -> None:
    used = {s: {d.digit_id for i in range(TINY.num_images(s))
                for d in render_scene(TINY, tiny_banks[s], s, i).digits}
            for s in ("train", "val", "test")}
    assert all(used.values())
    for a, b in itertools.combinations(used.values(), 2):
        assert not a & b


def test_default_scale_range_covers_every_coco_size(bank: DigitBank) -> None:
    cfg = PRESETS["default"]
    train = scene_banks(cfg, bank)["train"]
    records = [ImageRecord(i + 1, f"{i}.jpg", 320, 320,
                           render_scene(cfg, train, "train", i).annotations())
               for i in range(40)]
    stats = scene_statistics({"train": DatasetSplit(list(CLASS_NAMES), records, Path("."))})
    buckets = stats["train"]["size_buckets"]
    assert min(buckets.values()) > 0, buckets
    assert sum(buckets.values()) == stats["train"]["objects"]
    assert stats["train"]["overlap_fraction"] > 0


# --------------------------------------------------------------------------- building


def test_build_writes_jpegs_and_is_reproducible(tmp_path: Path, bank: DigitBank) -> None:
    a = build_scenes(TINY, tmp_path / "a", progress=False, bank=bank)
    b = build_scenes(TINY, tmp_path / "b", progress=False, workers=2, bank=bank)
    assert [len(a[s]) for s in ("train", "val", "test")] == [12, 4, 4]
    for split in ("train", "val", "test"):
        sa, sb = a[split], b[split]
        assert sa.class_names == list(CLASS_NAMES) and sa.name == split
        assert sa.image_root == tmp_path / "a" / "images" / split
        assert [r.image_id for r in sa.images] == list(range(1, len(sa) + 1))
        assert sa.images == sb.images
        for ra, rb in zip(sa.images, sb.images):
            assert ra.file_name == f"{split}_{ra.image_id - 1:06d}.jpg"
            assert sa.image_path(ra).read_bytes() == sb.image_path(rb).read_bytes()
            assert cv2.imread(str(sa.image_path(ra))).shape == (128, 128, 3)
    c = build_scenes(scene_config("tiny", seed=9, num_train=5), tmp_path / "a", progress=False,
                     bank=bank)
    assert sorted(p.name for p in c["train"].image_root.iterdir()) == [
        f"train_{i:06d}.jpg" for i in range(5)]  # stale images of the larger build removed
    assert c["train"].images != a["train"].images[:5]
    assert (tmp_path / "a" / "scene_config.json").is_file()


# --------------------------------------------------------------------------- statistics


def _split(name: str, boxes_per_image: list[list[tuple[tuple[float, ...], int]]]) -> DatasetSplit:
    images = [ImageRecord(i + 1, f"{i}.jpg", 320, 320,
                          tuple(ObjectAnnotation(box, label) for box, label in objs))
              for i, objs in enumerate(boxes_per_image)]
    return DatasetSplit(list(CLASS_NAMES), images, Path("."), name=name)


def test_statistics_known_values() -> None:
    train = _split("train", [
        [((0, 0, 10, 10), 0), ((5, 5, 15, 15), 1)],             # small, small, overlapping
        [((0, 0, 50, 50), 1), ((100, 100, 200, 200), 2)],       # medium, large
    ])
    val = _split("val", [[((0, 0, 40, 30), 3), ((40, 0, 80, 30), 3), ((0, 40, 5, 45), 9)]])
    stats = scene_statistics({"train": train, "val": val})
    t = stats["train"]
    assert t["images"] == 2 and t["objects"] == 4
    assert t["objects_per_image"] == {"min": 2, "mean": 2.0, "max": 2}
    assert t["size_buckets"] == {"small": 2, "medium": 1, "large": 1}
    assert t["overlap_fraction"] == 0.5
    assert t["per_class"]["1"] == 2 and t["per_class"]["9"] == 0
    assert t["box_width"]["p50"] == 30.0 and t["box_height"]["p50"] == 30.0
    v = stats["val"]
    assert v["overlap_fraction"] == 0.0  # touching boxes (x2 == x1) do not overlap
    assert v["size_buckets"] == {"small": 1, "medium": 2, "large": 0}
    assert stats["all"]["objects"] == 7 and stats["all"]["per_class"]["3"] == 2
    table = format_statistics(stats)
    assert table.splitlines()[0] == "| statistic | train | val | all |"
    assert "| objects | 4 | 3 | 7 |" in table
    assert "| objects overlapping another | 50.0% | 0.0% | 28.6% |" in table
    with pytest.raises(ValueError, match="at least one split"):
        scene_statistics({})
