"""Datasets (Fashion-MNIST idx, MNIST-5k, OpenCV digits, image folders) and batch augmentation."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from classify.data.augment import (
    ERASE_AREA,
    Augment,
    BatchTransform,
    fit_to_size,
    match_channels,
    normalization_for,
    random_crop,
    random_erase,
)
from classify.data.datasets import (
    FASHION_CLASSES,
    TensorImageDataset,
    default_hflip,
    load_data,
    load_fashion_mnist,
    load_named,
    load_split,
    per_class_subset,
    read_idx,
    stratified_split,
)
from classify.engine.config import TrainConfig
from classify.engine.run import build_transforms


def _write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


# ----------------------------------------------------------------------------- idx, Fashion-MNIST


def test_read_idx_round_trip(tmp_path: Path) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(read_idx(_write_idx(tmp_path / "a-idx3-ubyte.gz", array)), array)
    assert np.array_equal(read_idx(_write_idx(tmp_path / "b-idx3-ubyte", array, False)), array)


def test_read_idx_rejects_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"\x00\x00\x0d\x01\x00\x00\x00\x02ab"))  # type 0x0d: float
    with pytest.raises(ValueError, match=r"bad.gz: not an idx file .*00 00 0d 01"):
        read_idx(bad)
    short = tmp_path / "short.gz"
    good = bytes([0, 0, 8, 1]) + struct.pack(">i", 10) + b"abc"  # declares 10 bytes, has 3
    short.write_bytes(gzip.compress(good))
    with pytest.raises(ValueError, match=r"short.gz: idx header declares shape \(10,\) .* has 11 bytes"):
        read_idx(short)


def test_fashion_mnist_real_files() -> None:
    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    assert (len(train), len(test)) == (60000, 10000)
    assert train.images.shape == (60000, 1, 28, 28) and train.images.dtype == torch.uint8
    assert train.class_counts().tolist() == [6000] * 10
    assert test.class_counts().tolist() == [1000] * 10
    assert train.class_names == FASHION_CLASSES and train.class_names[9] == "Ankle boot"
    assert 70 < float(train.images.float().mean()) < 75  # mean pixel 72.94 (0.286 * 255)


def test_fashion_mnist_missing_names_the_debian_package(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        load_fashion_mnist("train", root=tmp_path)
    with pytest.raises(ValueError, match="split must be one of"):
        load_fashion_mnist("validation")


# ----------------------------------------------------------------------------- digits


def test_mnist5k_and_digits_share_one_stratified_split() -> None:
    mnist, digits = load_named("mnist5k"), load_named("digits")
    assert (len(mnist["train"]), len(mnist["test"])) == (4000, 1000)
    assert mnist["train"].class_counts().tolist() == [400] * 10
    assert mnist["test"].class_counts().tolist() == [100] * 10
    assert mnist["train"].images.shape[1:] == (1, 28, 28)
    assert digits["test"].images.shape[1:] == (1, 20, 20)
    # the two sources are the same 5,000 samples in the same order: the splits coincide
    assert np.array_equal(mnist["test"].labels, digits["test"].labels)
    small = torch.nn.functional.interpolate(mnist["test"].images[:50].float(), size=20,
                                            mode="bilinear", antialias=True)
    rmse = (small - digits["test"].images[:50].float()).pow(2).mean(dim=(1, 2, 3)).sqrt()
    assert float(rmse.median()) < 20


def test_unknown_dataset_suggests_the_closest_name() -> None:
    with pytest.raises(ValueError, match=r"unknown dataset 'fashon'; did you mean 'fashion'\?"):
        load_data("fashon")
    with pytest.raises(ValueError, match="expected one of mnist5k, fashion, digits"):
        load_data("cifar10")


# ----------------------------------------------------------------------------- splits and subsets


def test_stratified_split_and_per_class_subset() -> None:
    labels = np.repeat(np.arange(3), [10, 20, 5])
    kept, held = stratified_split(labels, 0.2, seed=1)
    assert np.bincount(labels[held]).tolist() == [2, 4, 1]
    assert len(np.intersect1d(kept, held)) == 0 and len(kept) + len(held) == 35
    again = stratified_split(labels, 0.2, seed=1)
    assert np.array_equal(again[1], held)
    picked = per_class_subset(labels, 7, seed=3)
    assert np.bincount(labels[picked]).tolist() == [7, 7, 5]  # class 2 has only 5
    assert np.array_equal(picked, per_class_subset(labels, 7, seed=3))
    assert not np.array_equal(picked, per_class_subset(labels, 7, seed=4))


def test_load_data_holdout_and_subsets() -> None:
    splits = load_data("mnist5k", val_fraction=0.1, subset=30, test_subset=8, seed=0)
    assert splits.val_name == "holdout"
    assert splits.train.class_counts().tolist() == [30] * 10
    assert splits.val.class_counts().tolist() == [8] * 10
    assert splits.test.class_counts().tolist() == [8] * 10
    assert splits.test is not splits.val
    plain = load_data("mnist5k", test_subset=5)
    assert plain.val_name == "test" and plain.test is plain.val and len(plain.train) == 4000


def test_tensor_dataset_checks_shapes_and_labels() -> None:
    images = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"shape \[N, H, W\] or \[N, C, H, W\] .* got \[4, 2, 8, 8\]"):
        TensorImageDataset(torch.zeros(4, 2, 8, 8, dtype=torch.uint8), [0] * 4, ["a"])
    with pytest.raises(TypeError, match="must be uint8"):
        TensorImageDataset(images.float(), [0] * 4, ["a"])
    with pytest.raises(ValueError, match=r"expected 4 labels .* got shape \[3\]"):
        TensorImageDataset(images, [0, 0, 0], ["a"])
    with pytest.raises(ValueError, match=r"label 2 at index 3 is outside \[0, 2\)"):
        TensorImageDataset(images, [0, 1, 1, 2], ["a", "b"])
    ds = TensorImageDataset(np.zeros((4, 8, 8), np.uint8), [0, 1, 1, 0], ["a", "b"])
    assert ds.channels == 1 and ds[2][0].shape == (1, 8, 8) and ds[2][1] == 1


# ----------------------------------------------------------------------------- image folders


def _png(path: Path, size: tuple[int, int], value: int, mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    color = value if mode == "L" else (value, 0, 255 - value)
    Image.new(mode, size, color).save(path)


def test_image_folder_split_channels_and_resize(tmp_path: Path) -> None:
    for c, name in enumerate(("cat", "dog")):
        for i in range(10):
            _png(tmp_path / name / f"{i}.png", (12 + i, 10), 20 * c + i, "RGB" if i == 0 else "L")
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    splits = load_data(str(tmp_path), size=16)
    assert splits.class_names == ("cat", "dog") and splits.channels == 3
    assert (len(splits.train), len(splits.test)) == (16, 4)
    image, label = splits.train[0]
    assert image.shape == (3, 16, 16) and image.dtype == torch.uint8 and label == 0


def test_image_folder_with_split_folders(tmp_path: Path) -> None:
    for split, n in (("train", 3), ("test", 2)):
        for name in ("a", "b"):
            for i in range(n):
                _png(tmp_path / split / name / f"{i}.png", (8, 8), 100)
    splits = load_data(str(tmp_path))
    assert (len(splits.train), len(splits.test), splits.val_name) == (6, 4, "test")
    assert not splits.selects_on_validation  # the test split is watched, never used to choose
    assert splits.train[0][0].shape == (1, 8, 8)  # one size everywhere: not resized
    _png(tmp_path / "test" / "zebra" / "0.png", (8, 8), 1)
    with pytest.raises(ValueError, match=r"class folder\(s\) \['zebra'\] are not among the training"):
        load_data(str(tmp_path))


def test_a_train_only_folder_holds_out_val_fraction(tmp_path: Path) -> None:
    for name in ("a", "b"):
        for i in range(8):
            _png(tmp_path / "train" / name / f"{i}.png", (8, 8), 10 * i)
    with pytest.raises(ValueError, match=r"expected a test/ \(or val/\) folder next to train/, or a val_fraction "
                                         r"\(--val-fraction 0.15\)"):
        load_data(str(tmp_path))
    splits = load_data(str(tmp_path), val_fraction=0.25)
    assert (len(splits.train), len(splits.val), splits.val_name) == (12, 4, "holdout")
    assert splits.test is splits.val and splits.selects_on_validation
    assert splits.val.class_counts().tolist() == [2, 2]  # stratified


def test_image_folder_errors_name_the_culprit(tmp_path: Path) -> None:
    _png(tmp_path / "a" / "0.png", (8, 8), 1)
    (tmp_path / "b").mkdir()
    with pytest.raises(ValueError, match=r"/b: class folder holds no images"):
        load_data(str(tmp_path))
    _png(tmp_path / "b" / "0.png", (8, 8), 1)
    (tmp_path / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ValueError, match=r"broken.png: not a readable image"):
        load_data(str(tmp_path))
    with pytest.raises(ValueError, match="found none"):
        load_data(str(tmp_path / "a"))


def test_load_split_per_class() -> None:
    test = load_split("digits", "test", per_class=3)
    assert test.class_counts().tolist() == [3] * 10
    with pytest.raises(ValueError, match="no split 'val'; it has train, test"):
        load_split("digits", "val")


# ----------------------------------------------------------------------------- batch transforms


def test_normalization_and_channels() -> None:
    (mean,), (std,) = normalization_for((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1)
    assert (mean, std) == pytest.approx((0.449, 0.226))
    assert normalization_for((0.5,), (0.25,), 3) == ((0.5,) * 3, (0.25,) * 3)
    grey = torch.rand(2, 1, 4, 4)
    assert torch.equal(match_channels(grey, 3), grey.expand(-1, 3, -1, -1))
    rgb = torch.zeros(1, 3, 2, 2)
    rgb[:, 1] = 1.0
    assert torch.allclose(match_channels(rgb, 1), torch.full((1, 1, 2, 2), 0.587))


def test_eval_transform_values() -> None:
    images = torch.full((2, 1, 28, 28), 51, dtype=torch.uint8)  # 0.2
    tf = BatchTransform(32, 3, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), fit_mode="pad")
    x = tf(images)
    assert x.shape == (2, 3, 32, 32)
    assert torch.allclose(x[:, :, 2:30, 2:30], torch.tensor(-0.6))  # (0.2 - 0.5) / 0.5
    assert torch.allclose(x[:, :, :2], torch.tensor(-1.0))  # zero border, normalised
    resized = BatchTransform(56, 1, (0.2,), (1.0,))(images)
    assert resized.shape == (2, 1, 56, 56) and torch.allclose(resized, torch.tensor(0.0), atol=1e-6)
    with pytest.raises(ValueError, match="expected a uint8 batch"):
        tf(images.float())


def test_random_crop_is_a_shift_of_the_padded_image() -> None:
    x = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).view(2, 1, 5, 5)
    gen = torch.Generator().manual_seed(3)
    out = random_crop(x, 2, gen)
    offsets = torch.randint(0, 5, (2, 2), generator=torch.Generator().manual_seed(3))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i, (dy, dx) in enumerate(offsets.tolist()):
        assert torch.equal(out[i], padded[i, :, dy:dy + 5, dx:dx + 5])


def test_augmentation_is_seeded_and_flip_mirrors() -> None:
    images = torch.randint(0, 256, (6, 1, 12, 12), dtype=torch.uint8)
    aug = Augment(crop_padding=0.125, hflip=0.5, brightness=0.3, contrast=0.3)
    tf = BatchTransform(12, 1, (0.0,), (1.0,), augment=aug)
    a = tf(images, torch.Generator().manual_seed(7))
    b = tf(images, torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and not torch.equal(a, tf(images, torch.Generator().manual_seed(8)))
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    flip = BatchTransform(12, 1, (0.0,), (1.0,), augment=Augment(hflip=1.0))(images)
    assert torch.allclose(flip, images.float().flip(-1) / 255)
    with pytest.raises(ValueError, match=r"Augment.hflip: expected a value in \[0, 1.0\], got 2"):
        Augment(hflip=2)


def test_random_erase_fills_one_rectangle_of_noise_per_chosen_image() -> None:
    x = torch.full((64, 2, 20, 30), 2.0)  # outside [0, 1]: noise can never equal it
    out = random_erase(x, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(out, random_erase(x, 1.0, torch.Generator().manual_seed(0)))
    changed = out != x
    assert torch.equal(changed[:, 0], changed[:, 1])  # the same rectangle in every channel
    for i, mask in enumerate(changed[:, 0]):
        rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
        h, w = len(rows), len(cols)
        assert rows[-1] - rows[0] + 1 == h and cols[-1] - cols[0] + 1 == w, i  # contiguous
        assert int(mask.sum()) == h * w, i  # a full rectangle
        low, high = ERASE_AREA[0] * 600, ERASE_AREA[1] * 600  # sides rounded: up to 0.5 px more or less
        assert (low**0.5 - 0.5) ** 2 <= h * w <= high + 0.5 * (20 + 30) + 0.25, (i, h, w)
    erased = out[changed]
    assert 0 <= float(erased.min()) and float(erased.max()) < 1 and erased.std() > 0.2
    assert torch.equal(random_erase(x, 0.0), x)
    kept = random_erase(x, 0.5, torch.Generator().manual_seed(1)) == x
    assert 10 < int(kept.flatten(1).all(1).sum()) < 54  # about half the images untouched


def test_erasing_option_reaches_the_training_transform() -> None:
    config = TrainConfig(data="digits", erasing=1.0, image_size=16, in_chans=1)
    train, evaluate = build_transforms(config)
    assert train.augment is not None and train.augment.erasing == 1.0 and evaluate.augment is None
    with pytest.raises(ValueError, match=r"Augment.erasing: expected a value in \[0, 1.0\], got 1.5"):
        Augment(erasing=1.5)


def test_fit_to_size_pad_centres_and_resizes_larger() -> None:
    x = torch.ones(1, 1, 3, 3)
    padded = fit_to_size(x, 6, "pad")
    assert padded.sum() == 9 and torch.equal(padded[0, 0, 1:4, 1:4], torch.ones(3, 3))
    assert fit_to_size(torch.ones(1, 1, 10, 10), 6, "pad").shape == (1, 1, 6, 6)


def test_default_hflip() -> None:
    assert default_hflip("mnist5k") == default_hflip("digits") == 0.0
    assert default_hflip("fashion") == 0.5 and default_hflip("/data/pets") == 0.5
