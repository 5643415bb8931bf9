"""The record of a training run: rows of plain numbers, written as JSON, drawn as curves.

Both trainers keep one row per epoch (or evaluation); :func:`plot_curves` is the one training
curves figure: each :class:`Panel` (losses, accuracy...) drawn against each x axis (epoch,
iteration, training minutes).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classify.base.atomic import atomic_write, write_text_atomic

__all__ = ["Panel", "json_ready", "metric_row", "plot_curves", "write_history"]


@dataclass(frozen=True)
class Panel:
    """One panel of :func:`plot_curves`: the row keys drawn as lines, and how.

    Attributes:
        title, ylabel: the panel's title and y-axis label.
        keys: row keys, one line each (rows without the key, or with ``None``, are skipped).
        labels: legend text per key (default: the key).
        scale: factor applied to the values (100: fractions shown as percent).
        ylim: the y range, or ``None`` for matplotlib's.
        rows: where the lines come from: ``"rows"`` (the rows given) or the name of another
            series passed to :func:`plot_curves` (e.g. a denser loss log).
    """

    title: str
    ylabel: str
    keys: Sequence[str]
    labels: Mapping[str, str] = field(default_factory=dict)
    scale: float = 1.0
    ylim: tuple[float, float] | None = None
    rows: str = "rows"


def json_ready(value: Any) -> Any:
    """``value`` with NaN/inf floats replaced by ``None``, recursively (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def metric_row(prefix: str, metrics: Mapping[str, Any]) -> dict[str, float]:
    """The scalar numbers of ``metrics``, keys prefixed (``val_`` + ``AP`` -> ``val_AP``)."""
    return {f"{prefix}{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


def write_history(path: Path, rows: list[dict[str, Any]], summary: Mapping[str, Any] | None = None) -> Path:
    """Write ``{"epochs": rows, **summary}`` as JSON atomically (NaN written as null)."""
    payload = {"epochs": json_ready(rows), **json_ready(dict(summary or {}))}
    return write_text_atomic(Path(path), json.dumps(payload, indent=2, allow_nan=False) + "\n")


def _series(rows: Sequence[Mapping[str, Any]], x_key: str, y_key: str, scale: float) -> tuple[list, list]:
    points = [(r[x_key], scale * r[y_key]) for r in rows if r.get(y_key) is not None and r.get(x_key) is not None
              and float(r[y_key]) >= 0]
    return [p[0] for p in points], [p[1] for p in points]


def plot_curves(rows: Sequence[Mapping[str, Any]], path: str | Path, panels: Sequence[Panel],
                x_axes: Sequence[tuple[str, str]] = (("epoch", "epoch"),), title: str = "",
                series: Mapping[str, Sequence[Mapping[str, Any]]] | None = None) -> Path:
    """Training curves as a PNG: each panel against each x axis ``(row key, label)``.

    One x axis: the panels side by side; several: one row of panels per panel, one column per
    axis. Returns ``path`` (written atomically, parents created).
    """
    from matplotlib.figure import Figure

    sources = {"rows": rows, **dict(series or {})}
    cols, n = len(x_axes), len(panels)
    shape = (1, n) if cols == 1 else (n, cols)
    fig = Figure(figsize=(4.8 * shape[1] + 0.6, 3.9 * shape[0]), layout="constrained")
    axes = fig.subplots(*shape, squeeze=False)
    for i, panel in enumerate(panels):
        for j, (x_key, x_label) in enumerate(x_axes):
            ax = axes[0, i] if cols == 1 else axes[i, j]
            _draw(ax, panel, sources[panel.rows], x_key, x_label)
    if title:
        fig.suptitle(title)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))


def _draw(ax: Any, panel: Panel, rows: Sequence[Mapping[str, Any]], x_key: str, x_label: str) -> None:
    dense = len(rows) > 40
    for key in panel.keys:
        xs, ys = _series(rows, x_key, key, panel.scale)
        if xs:
            ax.plot(xs, ys, marker=None if dense else "o", markersize=3, label=panel.labels.get(key, key),
                    linewidth=2.0 if key == panel.keys[0] else 1.2)
    ax.set(xlabel=x_label, ylabel=panel.ylabel, title=f"{panel.title} vs {x_label}")
    if panel.ylim is not None:
        ax.set_ylim(*panel.ylim)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
