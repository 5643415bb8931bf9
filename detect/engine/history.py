"""The record of a training run: one row per epoch, ``history.json`` and ``curves.png``.

Each row is a flat dict of plain numbers::

    {"epoch": 3, "iteration": 1500, "epochs": 3.0, "partial": false,
     "minutes": 12.4, "wall_minutes": 13.9, "lr": 0.02,
     "loss": 0.81, "loss_classifier": 0.3, ...,
     "val_AP": 0.41, "val_AP50": 0.72, ..., "test_AP": ...}

``minutes`` counts training only (validation, checkpoints and reports excluded) and
``wall_minutes`` everything since the run started, both summed over resumed sessions, so a curve
of accuracy against CPU minutes can be drawn from the file. ``epochs`` is the fractional number
of epochs done (``iteration / batches_per_epoch``); ``partial`` marks a row written when a run
stopped mid-epoch (time budget).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from classify.base.atomic import write_text_atomic

METRIC_PREFIXES = ("val_", "test_")
CURVE_METRICS = ("AP50", "AP")


def metric_row(prefix: str, metrics: Mapping[str, Any]) -> dict[str, float]:
    """The scalar numbers of an :func:`detect.engine.loop.evaluate` result, keys prefixed (``val_AP``)."""
    return {f"{prefix}{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


def write_history(path: Path, rows: list[dict[str, Any]], summary: Mapping[str, Any] | None = None) -> Path:
    """Write ``{"epochs": rows, **summary}`` as JSON atomically (NaN written as null)."""
    clean = [{k: _json_number(v) for k, v in row.items()} for row in rows]
    payload = {"epochs": clean, **{k: _json_value(v) for k, v in (summary or {}).items()}}
    return write_text_atomic(Path(path), json.dumps(payload, indent=2, allow_nan=False) + "\n")


def _json_number(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _json_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return _json_number(value)


def _series(rows: list[dict[str, Any]], x_key: str, y_key: str) -> tuple[list[float], list[float]]:
    points = [(r[x_key], r[y_key]) for r in rows if r.get(y_key) is not None and r.get(x_key) is not None
              and float(r[y_key]) >= 0]
    return [p[0] for p in points], [p[1] for p in points]


def _metric_label(key: str) -> str:
    """``val_AP50`` -> ``val mAP50``; ``val_AP`` -> ``val mAP50-95``."""
    prefix, metric = key.split("_", 1)
    return f"{prefix} m{metric}" + ("50-95" if metric == "AP" else "")


def plot_curves(rows: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """``curves.png``: losses (top) and val/test AP50, AP (bottom) vs epochs (left) and minutes (right)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12.0, 8.0))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    loss_keys = sorted({k for r in rows for k in r if k.startswith("loss")}, key=lambda k: (k != "loss", k))
    metric_keys = [p + m for p in METRIC_PREFIXES for m in CURVE_METRICS if any(r.get(p + m) is not None for r in rows)]
    for col, (x_key, x_label) in enumerate((("epochs", "epoch"), ("minutes", "training minutes"))):
        for key in loss_keys:
            axes[0, col].plot(*_series(rows, x_key, key), marker="o", markersize=3, label=key,
                              linewidth=2.0 if key == "loss" else 1.0)
        for key in metric_keys:
            axes[1, col].plot(*_series(rows, x_key, key), marker="o", markersize=3, label=_metric_label(key))
        axes[0, col].set(xlabel=x_label, ylabel="mean training loss", title=f"losses vs {x_label}")
        axes[1, col].set(xlabel=x_label, ylabel="COCO mAP", ylim=(0.0, 1.0), title=f"mAP vs {x_label}")
        for ax in axes[:, col]:
            ax.grid(True, alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, format="png")
    return path
