"""detect.data.mosaic (mosaic, mixup, MosaicDataset), its wiring into the training data, close_mosaic
and the config checks; ``fit`` with mosaics and their resume are in test_train.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torchvision.transforms.v2.functional as F

from detect.data.build import build_digit_scenes
from detect.data.dataset import DetectionDataset
from detect.data.formats import load_split
from detect.data.mosaic import (
    FILL,
    MosaicDataset,
    crop_window,
    fit_longer_side,
    merge_targets,
    mixup,
    mosaic_window,
    place_quadrants,
    quadrant_origins,
)
from detect.data.sampler import SeededDataset
from detect.data.scene_config import scene_config
from detect.data.transforms import Compose, Letterbox, build_transforms
from detect.engine.config import DetectTrainConfig, close_mosaic_epoch
from detect.engine.data import build_train_loader

SIZE = 64


def target(boxes, labels, image_id=0):
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    labels = torch.tensor(labels, dtype=torch.int64)
    return {"boxes": boxes, "labels": labels, "difficult": labels % 2 == 1, "image_id": image_id,
            "orig_size": (99, 99)}


def same_sample(a, b) -> bool:
    """Equal images and equal targets (tensors exactly)."""
    (image_a, target_a), (image_b, target_b) = a, b
    if not torch.equal(image_a, image_b) or target_a.keys() != target_b.keys():
        return False
    return all(torch.equal(v, target_b[k]) if isinstance(v, torch.Tensor) else v == target_b[k]
               for k, v in target_a.items())


def without_flag(sample):
    image, t = sample
    return image, {k: v for k, v in t.items() if k != "mosaic"}


# ----------------------------------------------------------------------------- hand-made geometry


def test_fit_longer_side_scales_image_and_boxes() -> None:
    image, t = fit_longer_side(torch.rand(3, 40, 20), target([[4, 8, 12, 20]], [1]), 20)
    assert image.shape == (3, 20, 10)
    assert t["boxes"].tolist() == [[2, 4, 6, 10]] and t["labels"].tolist() == [1]


def test_four_tiles_land_around_the_centre_with_their_boxes() -> None:
    # tiles (h, w) 10x20, 20x20, 20x12, 16x20 on a 40x40 canvas, centre (18, 22)
    sizes, values = [(10, 20), (20, 20), (20, 12), (16, 20)], [0.1, 0.2, 0.3, 0.4]
    tiles = [torch.full((3, h, w), v) for (h, w), v in zip(sizes, values)]
    targets = [target([[3, 2, 9, 8]], [1], image_id=11), target([[0, 0, 5, 5]], [2]),
               target([[6, 10, 12, 20]], [3]), target([[10, 4, 20, 16]], [4])]
    assert quadrant_origins(sizes, (18, 22)) == [(-2, 12), (18, 2), (6, 22), (18, 22)]
    canvas, merged = place_quadrants(tiles, targets, (18, 22), 40)
    # each box moved by its tile's origin; the third reaches past the canvas (y 42) and is not clipped here
    assert merged["boxes"].tolist() == [[1, 14, 7, 20], [18, 2, 23, 7], [12, 32, 18, 42], [28, 26, 38, 38]]
    assert merged["labels"].tolist() == [1, 2, 3, 4]
    assert merged["difficult"].tolist() == [True, False, True, False]
    assert merged["image_id"] == 11  # per-image entries of the first target
    expected = torch.full((3, 40, 40), FILL)
    expected[:, 12:22, 0:18] = 0.1  # top-left tile, its 2 leftmost columns cut by the canvas
    expected[:, 2:22, 18:38] = 0.2
    expected[:, 22:40, 6:18] = 0.3  # bottom-left tile, its 2 bottom rows cut
    expected[:, 22:38, 18:38] = 0.4
    assert torch.equal(canvas, expected)


def test_crop_clips_cut_boxes_and_drops_remnants_with_their_fields() -> None:
    canvas = torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(0))
    boxes = [[12, 12, 20, 18],    # inside the window (10, 10)-(30, 30): kept as is
             [25, 12, 35, 16],    # half outside: clipped to [25, 12, 30, 16], 50% left, kept
             [28, 20, 38, 30],    # 20% left: dropped
             [20, 12, 21.5, 18],  # inside but 1.5 px wide: dropped
             [0, 0, 5, 5]]        # outside: dropped
    t = target(boxes, [10, 11, 12, 13, 14], image_id=5)
    image, out = crop_window(canvas, t, (10, 10, 20), 20)
    assert torch.equal(image, canvas[:, 10:30, 10:30])
    assert out["boxes"].tolist() == [[2, 2, 10, 8], [15, 2, 20, 6]]
    assert out["labels"].tolist() == [10, 11] and out["difficult"].tolist() == [False, True]
    assert out["image_id"] == 5 and t["boxes"].shape == (5, 4)  # the input is not modified
    # the same window resized to 10 x 10: every point halves (the 50% box still 50%)
    image, out = crop_window(canvas, t, (10, 10, 20), 10)
    assert torch.allclose(image, F.resize(canvas[:, 10:30, 10:30], [10, 10], antialias=True))
    assert out["boxes"].tolist() == [[1, 1, 5, 4], [7.5, 1, 10, 3]] and out["labels"].tolist() == [10, 11]


def test_window_past_the_canvas_is_filled_and_boxes_clipped_to_the_canvas() -> None:
    canvas = torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(1))
    t = target([[32, 32, 45, 38], [36, 20, 45, 34]], [1, 2])  # both reach past the canvas (x > 40)
    image, out = crop_window(canvas, t, (30, 30, 20), 20)
    assert torch.equal(image[:, :10, :10], canvas[:, 30:, 30:])
    assert (image[:, 10:] == FILL).all() and (image[:, :, 10:] == FILL).all()
    # [2, 2, 15, 8] clipped at the canvas edge (10): 8 of 13 px wide left, kept;
    # [6, -10, 15, 4] keeps 4 of 9 px x 4 of 14 px, 13%: dropped
    assert out["boxes"].tolist() == [[2, 2, 10, 8]] and out["labels"].tolist() == [1]


def test_mosaic_window_is_centred_and_scaled() -> None:
    assert mosaic_window(64, 1.0) == (32, 32, 64)
    assert mosaic_window(64, 2.0) == (48, 48, 32)  # zoom in: a smaller window
    assert mosaic_window(64, 0.8) == (24, 24, 80)
    assert mosaic_window(64, 1.0, (6.4, -3.0)) == (38, 29, 64)


def test_mixup_blends_images_and_keeps_both_sets_of_objects() -> None:
    a, b = torch.zeros(3, 4, 4), torch.ones(3, 4, 4)
    image, out = mixup(a, target([[0, 0, 2, 2]], [1], image_id=3), b, target([[1, 1, 3, 3], [0, 0, 4, 4]], [2, 3]),
                       0.25)
    assert torch.allclose(image, torch.full((3, 4, 4), 0.75))
    assert out["labels"].tolist() == [1, 2, 3] and out["boxes"].shape == (3, 4) and out["image_id"] == 3
    assert out["difficult"].tolist() == [True, False, True]
    with pytest.raises(ValueError, match=r"mixup: expected images of one shape, got \(3, 4, 4\) and \(3, 4, 5\)"):
        mixup(a, target([], []), torch.ones(3, 4, 5), target([], []), 0.5)


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"target 1 has the per-object fields \['boxes', 'labels'\], target 0 has "
                                         r"\['boxes', 'difficult', 'labels'\]"):
        merge_targets([target([[0, 0, 1, 1]], [1]), {"boxes": torch.zeros(1, 4), "labels": torch.zeros(1)}])
    with pytest.raises(ValueError, match="expected 4 tiles and 4 targets, got 3 and 3"):
        place_quadrants([torch.zeros(3, 2, 2)] * 3, [target([], [])] * 3, (1, 1), 4)
    identity = Compose([])
    with pytest.raises(ValueError, match=r"MosaicDataset.p: expected a probability in \[0, 1\], got 1.5"):
        MosaicDataset([], SIZE, 1.5, identity, identity)
    with pytest.raises(ValueError, match=r"MosaicDataset.scale_range: expected \(low, high\) with 0 < low <= high"):
        MosaicDataset([], SIZE, 0.5, identity, identity, scale_range=(1.2, 0.8))


# ----------------------------------------------------------------------------- the dataset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    build_digit_scenes(out, scene_config("tiny"), progress=False, workers=1)
    return out / "coco"


def pipelines() -> tuple[Compose, Compose]:
    single = build_transforms(True, SIZE, letterbox=True, hflip=0.5, scale_jitter=(0.7, 1.3), color_jitter=0.3,
                              translate=True)
    return single, Compose(single.transforms[1:])


def mosaics(tiny: Path, p: float = 1.0, seed: int = 0, **kwargs) -> SeededDataset:
    single, after = pipelines()
    split = load_split(tiny, "train")
    return SeededDataset(MosaicDataset(DetectionDataset(split), SIZE, p, single, after, scale_range=(0.7, 1.3),
                                       translate=True, **kwargs), seed=seed)


def test_mosaic_samples_are_square_valid_and_seeded(tiny: Path) -> None:
    data = mosaics(tiny, mixup=0.5)
    split = load_split(tiny, "train")
    for index in range(len(data)):
        image, t = data[index]
        assert t["mosaic"] is True and image.shape == (3, SIZE, SIZE)
        assert 0 <= image.min() and image.max() <= 1
        assert t["image_id"] == split.images[index].image_id  # the sample's own per-image entries
        boxes = t["boxes"]
        assert ((boxes >= 0) & (boxes <= SIZE)).all() and (boxes[:, 2:] - boxes[:, :2] >= 1).all()
        assert len(t["labels"]) == len(boxes) == len(t["difficult"]) == len(t["iscrowd"]) == len(t["area"])
    assert same_sample(data[3], mosaics(tiny, mixup=0.5)[3])  # same (seed, epoch, index): same mosaic
    assert not torch.equal(data[3][0], data[4][0])  # another index
    assert not torch.equal(data[3][0], mosaics(tiny, mixup=0.5, seed=1)[3][0])  # another seed
    data.set_epoch(1)
    assert not torch.equal(data[3][0], mosaics(tiny, mixup=0.5)[3][0])  # another epoch


def test_probability_zero_or_closed_gives_exactly_todays_samples(tiny: Path) -> None:
    single, _ = pipelines()
    today = SeededDataset(DetectionDataset(load_split(tiny, "train"), single), seed=0)
    zero, closed = mosaics(tiny, p=0.0), mosaics(tiny, p=1.0)
    closed.close_mosaic_at(0)
    for index in range(4):
        for data in (zero, closed):
            sample = data[index]
            assert sample[1]["mosaic"] is False and same_sample(without_flag(sample), today[index])


def test_close_mosaic_epoch_counts_the_runs_epochs() -> None:
    def close(n: int, total: int, batches: int = 3) -> int | None:
        return close_mosaic_epoch(DetectTrainConfig(close_mosaic=n), total, batches)

    assert close(0, 15) is None
    assert close(2, 15) == 3  # 5 epochs: 0, 1, 2 with mosaics, 3 and 4 without
    assert close(1, 7) == 2  # 7 iterations: epochs of 3, 3 and 1; the partial third counts as one
    assert close(3, 7) == 0 and close(5, 7) == -2  # no mosaic at all
    # an epoch has no mosaic exactly when it starts within the last close_mosaic * batches iterations
    for n in range(1, 4):
        for total in range(1, 20):
            for batches in range(1, 5):
                first = close(n, total, batches)
                assert all((e >= first) == (e * batches >= total - n * batches) for e in range(-(-total // batches)))


def test_last_close_mosaic_epochs_have_no_mosaic(tiny: Path, tmp_path: Path) -> None:
    # 12 images, batch 4: 3 batches an epoch; 4 epochs, close_mosaic 2: epochs 2 and 3 without
    config = DetectTrainConfig(data=tiny, output=tmp_path, image_size=SIZE, batch_size=4, epochs=4, mosaic=0.5,
                               close_mosaic=2, translate=True)
    _, sampler, data = build_train_loader(load_split(tiny, "train"), config, torch.device("cpu"))
    close = close_mosaic_epoch(config, 4 * sampler.num_batches(), sampler.num_batches())
    counts = []
    for epoch in range(4):
        data.set_epoch(epoch)
        data.close_mosaic_at(close)
        counts.append(sum(data[i][1]["mosaic"] for i in range(len(data))))
        assert data.mosaic_active == (epoch < 2)
    assert counts[2:] == [0, 0] and all(0 < c < 12 for c in counts[:2]), counts  # p = 0.5: some of 12


def test_train_loader_is_todays_without_mosaic(tiny: Path, tmp_path: Path) -> None:
    split = load_split(tiny, "train")
    config = DetectTrainConfig(data=tiny, output=tmp_path, image_size=SIZE, translate=True)
    _, _, data = build_train_loader(split, config, torch.device("cpu"))
    assert type(data.dataset) is DetectionDataset and isinstance(data.dataset.transforms.transforms[0], Letterbox)
    _, _, with_mosaic = build_train_loader(split, dataclasses.replace(config, mosaic=1.0), torch.device("cpu"))
    assert isinstance(with_mosaic.dataset, MosaicDataset)
    assert [type(t).__name__ for t in with_mosaic.dataset.after.transforms] == ["ColorJitter"]  # hflip 0
    image, t = with_mosaic[0]
    assert t["mosaic"] is True and image.shape == (3, SIZE, SIZE)


def test_config_checks_mosaic_close_mosaic_and_mixup() -> None:
    for key, value in (("mosaic", 1.5), ("mosaic", -0.1), ("mixup", 2.0)):
        with pytest.raises(ValueError, match=rf"DetectTrainConfig.{key}: expected .*, got {value}"):
            DetectTrainConfig(**{key: value, "mosaic": 0.5} if key == "mixup" else {key: value})
    with pytest.raises(ValueError, match=r"DetectTrainConfig.close_mosaic: expected int >= 0, got -1"):
        DetectTrainConfig(close_mosaic=-1)
    with pytest.raises(ValueError, match=r"DetectTrainConfig.mosaic: 0.5 builds image_size x image_size squares "
                                         r"like the letterbox; set letterbox: true, or mosaic: 0"):
        DetectTrainConfig(mosaic=0.5, letterbox=False)
    with pytest.raises(ValueError, match=r"DetectTrainConfig.mixup: 0.2 blends two mosaic samples, but mosaic is 0"):
        DetectTrainConfig(mixup=0.2)
    config = DetectTrainConfig(mosaic=1.0, close_mosaic=10, mixup=0.1)
    assert (config.mosaic, config.close_mosaic, config.mixup) == (1.0, 10, 0.1)
    assert DetectTrainConfig(close_mosaic=5).close_mosaic == 5  # no effect without mosaic, not an error
