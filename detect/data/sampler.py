"""Seeded sampling for detector training: which images go together, and with which random draws.

* :class:`GroupedBatchSampler` yields batches of dataset indices whose images share an
  aspect-ratio group (so padding a batch to its largest image wastes little), in an order fixed
  by ``(seed, epoch)``; it can start an epoch at any batch, for resuming mid-epoch.
* :class:`SeededDataset` runs each sample's transforms under its own seed, drawn from
  ``(seed, epoch, index)``, so augmentation does not depend on the number of workers, on the
  batch order, or on where a resumed run restarted; the process-wide RNG is left untouched.

Both follow ``set_epoch(epoch)``: call it before iterating an epoch (as with
``DistributedSampler``); data-loader workers must not be persistent.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (stable across processes and Python versions)."""
    digest = hashlib.sha256(":".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def aspect_ratio_groups(aspect_ratios: Sequence[float], group_factor: int = 3) -> list[int]:
    """Group id of each image from its ``width / height``.

    Bin edges are ``2 ** linspace(-1, 1, 2k + 1)`` for ``k = group_factor`` (``k = 0``: the single
    edge 1, portrait vs landscape); group ``g`` holds ratios in ``[edge[g-1], edge[g])``.
    """
    if group_factor < 0:
        raise ValueError(f"aspect-ratio group factor: expected >= 0, got {group_factor}")
    bad = [i for i, r in enumerate(aspect_ratios) if not r > 0]
    if bad:
        raise ValueError(f"aspect ratios must be > 0; image indices {bad[:10]} are not")
    n = 2 * group_factor + 1
    edges = [2 ** (-1 + 2 * i / (n - 1)) for i in range(n)] if n > 1 else [1.0]
    return [bisect.bisect_right(edges, r) for r in aspect_ratios]


class GroupedBatchSampler(Sampler[list[int]]):
    """Batches of indices from one group each; every index exactly once per epoch.

    The indices are shuffled by a generator seeded from ``(seed, epoch)`` (or kept in order
    when ``shuffle`` is off) and dealt into per-group buckets; a bucket that reaches
    ``batch_size`` becomes a batch. Leftover partial buckets follow at the end, by group id
    (dropped with ``drop_last``). The number of batches is therefore fixed:
    ``sum(ceil(n_g / batch_size))`` (``floor`` with ``drop_last``).

    Args:
        group_ids: group of each dataset index (e.g. :func:`aspect_ratio_groups`; all zeros for
            plain seeded batches).
        batch_size: indices per batch.
        seed: base seed of the shuffling.
        shuffle: shuffle each epoch (else dataset order).
        drop_last: drop the partial batch of each group.
    """

    def __init__(self, group_ids: Sequence[int], batch_size: int, seed: int = 0, shuffle: bool = True,
                 drop_last: bool = False) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
        if len(group_ids) == 0:
            raise ValueError("GroupedBatchSampler: expected at least one image, got none")
        self.group_ids = [int(g) for g in group_ids]
        self.batch_size, self.seed, self.shuffle, self.drop_last = batch_size, seed, shuffle, drop_last
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Iterate epoch ``epoch`` next, from its batch number ``start`` (0-based)."""
        if not 0 <= start <= self.num_batches():
            raise ValueError(f"start batch: expected 0..{self.num_batches()}, got {start}")
        self.epoch, self.start = epoch, start

    def num_batches(self) -> int:
        """Batches in a whole epoch."""
        counts: dict[int, int] = {}
        for g in self.group_ids:
            counts[g] = counts.get(g, 0) + 1
        div = (lambda n: n // self.batch_size) if self.drop_last else (lambda n: -(-n // self.batch_size))
        return sum(div(n) for n in counts.values())

    def batches(self, epoch: int) -> list[list[int]]:
        """All batches of ``epoch``, in order."""
        order = list(range(len(self.group_ids)))
        if self.shuffle:
            generator = torch.Generator().manual_seed(mix_seed(self.seed, epoch))
            order = torch.randperm(len(order), generator=generator).tolist()
        buckets: dict[int, list[int]] = {}
        out = []
        for index in order:
            bucket = buckets.setdefault(self.group_ids[index], [])
            bucket.append(index)
            if len(bucket) == self.batch_size:
                out.append(bucket.copy())
                bucket.clear()
        if not self.drop_last:
            out += [buckets[g] for g in sorted(buckets) if buckets[g]]
        return out

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches(self.epoch)[self.start:]

    def __len__(self) -> int:
        return self.num_batches() - self.start


class SeededDataset(Dataset):
    """Wrap a dataset so that sample ``index`` of epoch ``e`` is drawn under seed ``(seed, e, index)``.

    ``dataset[index]`` runs inside ``torch.random.fork_rng`` (CPU generator only) after
    ``torch.manual_seed``: the transforms' random draws are reproducible, and the caller's RNG
    state is the same afterwards. Attributes of the wrapped dataset (``class_names``, ``split``)
    are reachable through this one, and ``set_epoch`` reaches it too when it has one (e.g.
    :class:`detect.data.mosaic.MosaicDataset`, whose mosaics stop at a given epoch).
    """

    def __init__(self, dataset: Dataset, seed: int = 0) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(mix_seed(self.seed, self.epoch, index))
            return self.dataset[index]

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":  # not set yet (unpickling): avoid recursing
            raise AttributeError(name)
        return getattr(self.dataset, name)
