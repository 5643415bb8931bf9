"""The confusion matrix of a classifier as a PNG (training curves: :func:`classify.base.history.plot_curves`).

Figures are built with ``matplotlib.figure.Figure`` (no pyplot, so no global figure state and no
display needed) and written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from classify.base.atomic import atomic_write

__all__ = ["plot_confusion"]


def _save(fig: Any, path: str | Path) -> Path:
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))


def plot_confusion(confusion: Tensor | np.ndarray, class_names: Sequence[str], path: str | Path,
                   title: str = "") -> Path:
    """The confusion matrix (rows: true class, columns: predicted), coloured by row-normalised
    share, each cell labelled with its count."""
    from matplotlib.figure import Figure

    counts = np.asarray(confusion, dtype=np.int64)
    k = len(class_names)
    if counts.shape != (k, k):
        raise ValueError(f"plot_confusion: expected a {k}x{k} matrix for {k} class names, "
                         f"got shape {counts.shape}")
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    side = max(4.0, 0.55 * k + 2)
    fig = Figure(figsize=(side + 1, side), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="share of the true class")
    ticks = np.arange(k)
    long_names = max(map(len, class_names), default=0) > 3
    ax.set_xticks(ticks, class_names, rotation=45 if long_names else 0,
                  ha="right" if long_names else "center")
    ax.set_yticks(ticks, class_names)
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    if k <= 30:
        for t in range(k):
            for p in range(k):
                ax.text(p, t, str(counts[t, p]), ha="center", va="center", fontsize=7,
                        color="white" if shares[t, p] > 0.5 else "black")
    return _save(fig, path)
