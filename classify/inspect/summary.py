"""Model summaries: per-layer output shapes, parameters, MACs and FLOPs, with totals.

    >>> import torch
    >>> from classify import get_model
    >>> from classify.inspect.summary import summarize
    >>> with torch.device("meta"):            # no memory, no arithmetic: shapes only
    ...     model = get_model("resnet18")
    >>> s = summarize(model, (3, 224, 224))
    >>> round(s.macs / 1e9, 2), s.total_params
    (1.81, 11689512)

Counting convention (the one of the papers' and torchvision's tables):

* MACs are multiply-accumulates of convolutions, linear layers and matrix products
  (``mm``/``addmm``/``bmm``/``baddbmm``, convolutions, attention), counted by
  :class:`torch.utils.flop_counter.FlopCounterMode`; **FLOPs = 2 x MACs**.  Bias additions,
  BatchNorm, activations, pooling, residual additions and other element-wise work count 0:
  they are a fraction of a percent of a CNN's arithmetic, and the published numbers omit them.
  A convolution's MACs do not depend on ``groups`` beyond its weight shape:
  ``N * C_out * H_out * W_out * (C_in / groups) * kh * kw``.
* MACs are those of **one** forward pass of **one** image (batch 1) in eval mode (auxiliary
  heads of GoogLeNet / Inception v3 are skipped, as at inference).
* The ResNet paper (He et al. 2015, Table 1) calls multiply-adds "FLOPs": ResNet-18/34/50/101/152
  at 224 px are 1.8/3.6/3.8/7.6/11.3 G there.  These are MACs.  torchvision's (and this zoo's)
  ResNet-50/101/152 are "v1.5": the stride-2 of a down-sampling bottleneck sits in the 3x3
  convolution instead of the first 1x1, so the 3x3 runs at the higher resolution and the models
  cost 4.09/7.80/11.51 GMACs; ResNet-18/34 (basic blocks, no 1x1) are unchanged at 1.81/3.66.
  VGG-16 is 15.47 GMACs and 138,357,544 parameters.

Rows: ``depth=None`` lists every leaf module (a module without children) that ran; ``depth=D``
lists the modules ``D`` levels below the root (``"body.layer1.0"`` is depth 3) and leaves that
are shallower.  Row MACs include everything their submodules computed, over every call.  Work
done outside the listed modules (e.g. a matrix product in a parent's ``forward``) and
parameters owned by no listed module go to a final ``(other)`` row, so the rows always add up
to the totals.  Modules that never ran keep their parameters and show no output shape.

The forward runs wherever the model's parameters live: build the model under
``torch.device("meta")`` to count a full-size network in milliseconds without allocating it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["LayerRow", "ModelSummary", "format_count", "summarize"]

OTHER = "(other)"


@dataclass(frozen=True)
class LayerRow:
    """One row of a summary.

    ``output_shape`` is the shape of the first tensor the module returned on its first call
    (``None`` if it never ran); ``params``/``trainable`` count the module's parameters,
    submodules included; ``flops`` its FLOPs (2 x MACs) for one image, over all calls.
    """

    name: str
    type: str
    depth: int
    output_shape: tuple[int, ...] | None
    params: int
    trainable: int
    flops: int
    calls: int

    @property
    def macs(self) -> int:
        """Multiply-accumulates (``flops / 2``)."""
        return self.flops // 2


@dataclass(frozen=True)
class ModelSummary:
    """Per-layer rows and totals for one forward pass of one ``input_size`` image."""

    model: str
    input_size: tuple[int, ...]
    output_shape: tuple[int, ...] | None
    rows: tuple[LayerRow, ...]
    total_params: int
    trainable_params: int
    flops: int

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the whole forward pass (``flops / 2``)."""
        return self.flops // 2

    def totals(self) -> dict[str, Any]:
        """The totals as a plain dict (exact integers)."""
        return {"model": self.model, "input_size": list(self.input_size),
                "output_shape": _list_or_none(self.output_shape),
                "total_params": self.total_params, "trainable_params": self.trainable_params,
                "macs": self.macs, "flops": self.flops}

    def to_dict(self) -> dict[str, Any]:
        """Totals plus one dict per row (shapes as lists), ready for JSON."""
        rows = [dict(asdict(r), output_shape=_list_or_none(r.output_shape), macs=r.macs)
                for r in self.rows]
        return {**self.totals(), "rows": rows}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def total_lines(self) -> list[str]:
        """The footer: input, output, parameter, MAC and FLOP totals, one line each."""
        return [
            f"Input: {_shape_str((1, *self.input_size))}   Output: {_shape_str(self.output_shape)}",
            f"Total params: {self.total_params:,}   Trainable params: {self.trainable_params:,}"
            f"   Non-trainable params: {self.total_params - self.trainable_params:,}",
            f"MACs: {format_count(self.macs)} ({self.macs:,})   "
            f"FLOPs (2 x MACs): {format_count(self.flops)} ({self.flops:,})",
        ]

    def to_markdown(self) -> str:
        """A GitHub-flavoured Markdown table followed by the totals."""
        lines = [f"### {self.model}", "",
                 "| Layer | Type | Output shape | Params | Trainable | MACs | FLOPs |",
                 "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
        lines += ["| " + " | ".join(_cells(r)) + " |" for r in self.rows]
        return "\n".join(lines + [""] + [f"{line}  " for line in self.total_lines()]) + "\n"

    def to_rich_table(self) -> Any:
        """A :class:`rich.table.Table` of the rows, totals as the caption."""
        from rich.table import Table

        table = Table(title=f"{self.model} @ {_shape_str((1, *self.input_size))}",
                      caption="\n".join(self.total_lines()), caption_justify="left")
        for header, justify in (("Layer", "left"), ("Type", "left"), ("Output shape", "left"),
                                ("Params", "right"), ("Trainable", "right"),
                                ("MACs", "right"), ("FLOPs", "right")):
            table.add_column(header, justify=justify, no_wrap=True)
        for row in self.rows:
            table.add_row(*_cells(row))
        return table


def summarize(model: nn.Module, input_size: Sequence[int], *, depth: int | None = None,
              name: str | None = None) -> ModelSummary:
    """Run ``model`` once on a ``Tensor[1, *input_size]`` and count shapes, parameters, MACs.

    Args:
        model: any module taking one image batch ``Tensor[N, C, H, W]``.  It runs in eval mode
            under ``torch.no_grad`` on the device and dtype of its first parameter (``meta``
            works, and costs nothing); its training mode is restored afterwards.
        input_size: ``(C, H, W)`` of one image, in channels and pixels.
        depth: ``None`` for one row per leaf module; ``D >= 1`` for rows ``D`` levels deep.
        name: the title of the summary (default: the model's class name).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: bad ``input_size``/``depth``, or the forward pass fails on that input.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"summarize: model must be an nn.Module, got {type(model).__name__}")
    size = _check_input_size(input_size)
    _check_depth(depth)
    selected = _select_modules(model, depth)
    tracker = _Tracker(selected)
    out = _run(model, size, tracker)
    rows = [_row(path, mod, tracker) for path, mod in _ordered(selected, tracker)]
    total, trainable = _count_params(model)
    rows += _other_row(rows, total, trainable, tracker.counter.get_total_flops())
    return ModelSummary(name or type(model).__name__, size, _first_shape(out), tuple(rows),
                        total, trainable, tracker.counter.get_total_flops())


# -- running and recording -------------------------------------------------------------------

class _Tracker:
    """Forward hooks recording, per selected module, call order, first output shape, FLOPs."""

    def __init__(self, modules: dict[str, nn.Module]) -> None:
        self.modules = modules
        self.counter = FlopCounterMode(display=False)
        self.order: list[nn.Module] = []
        self.shapes: dict[nn.Module, tuple[int, ...] | None] = {}
        self.flops: dict[nn.Module, int] = {}
        self.calls: dict[nn.Module, int] = {}
        self._entry: dict[nn.Module, list[int]] = {}

    def attach(self) -> list[Any]:
        handles = []
        for mod in self.modules.values():
            handles.append(mod.register_forward_pre_hook(self._pre))
            handles.append(mod.register_forward_hook(self._post))
        return handles

    def _pre(self, mod: nn.Module, _args: Any) -> None:
        if mod not in self.calls:
            self.order.append(mod)
            self.calls[mod] = 0
            self.flops[mod] = 0
        self._entry.setdefault(mod, []).append(self.counter.get_total_flops())

    def _post(self, mod: nn.Module, _args: Any, output: Any) -> None:
        self.flops[mod] += self.counter.get_total_flops() - self._entry[mod].pop()
        self.calls[mod] += 1
        self.shapes.setdefault(mod, _first_shape(output))


def _run(model: nn.Module, size: tuple[int, ...], tracker: _Tracker) -> Any:
    ref = next(model.parameters(), None)
    x = torch.zeros((1, *size), device=ref.device if ref is not None else "cpu",
                    dtype=ref.dtype if ref is not None and ref.is_floating_point() else None)
    was_training = model.training
    handles = tracker.attach()
    try:
        model.eval()
        with torch.no_grad(), tracker.counter:
            return model(x)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"summarize: {type(model).__name__} failed on an input of shape "
                         f"{tuple(x.shape)}: {first}") from err
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)


# -- rows ------------------------------------------------------------------------------------

def _select_modules(model: nn.Module, depth: int | None) -> dict[str, nn.Module]:
    """Leaves (``depth=None``), or modules at ``depth`` plus shallower leaves; disjoint."""
    chosen = {}
    for path, mod in model.named_modules():
        if not path:
            continue
        level, leaf = path.count(".") + 1, next(mod.children(), None) is None
        wanted = leaf if depth is None else level == depth or (leaf and level < depth)
        if wanted:
            chosen[path] = mod
    return chosen


def _ordered(selected: dict[str, nn.Module], tracker: _Tracker) -> Iterator[tuple[str, nn.Module]]:
    """Modules in the order they first ran, then those that never ran, in definition order."""
    path_of = {mod: path for path, mod in selected.items()}
    yield from ((path_of[mod], mod) for mod in tracker.order)
    yield from ((path, mod) for path, mod in selected.items() if mod not in tracker.calls)


def _row(path: str, mod: nn.Module, tracker: _Tracker) -> LayerRow:
    total, trainable = _count_params(mod)
    return LayerRow(path, type(mod).__name__, path.count(".") + 1, tracker.shapes.get(mod),
                    total, trainable, tracker.flops.get(mod, 0), tracker.calls.get(mod, 0))


def _other_row(rows: list[LayerRow], total: int, trainable: int, flops: int) -> list[LayerRow]:
    rest = (total - sum(r.params for r in rows), trainable - sum(r.trainable for r in rows),
            flops - sum(r.flops for r in rows))
    if not any(rest):
        return []
    return [LayerRow(OTHER, "", 0, None, rest[0], rest[1], rest[2], 0)]


def _count_params(mod: nn.Module) -> tuple[int, int]:
    """``(total, trainable)`` parameters of ``mod``; a shared parameter counts once."""
    params = list(mod.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def _first_shape(output: Any) -> tuple[int, ...] | None:
    """Shape of the first tensor in ``output`` (a tensor, or nested tuples/lists/dicts)."""
    if isinstance(output, Tensor):
        return tuple(output.shape)
    if isinstance(output, Mapping):
        output = list(output.values())
    for item in output if isinstance(output, (tuple, list)) else ():
        shape = _first_shape(item)
        if shape is not None:
            return shape
    return None


# -- checks and formatting -------------------------------------------------------------------

def _check_input_size(input_size: Sequence[int]) -> tuple[int, ...]:
    ok = (isinstance(input_size, Sequence) and len(input_size) == 3
          and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in input_size))
    if not ok:
        raise ValueError(f"summarize: input_size must be (C, H, W), three positive ints, "
                         f"got {input_size!r}")
    return tuple(input_size)


def _check_depth(depth: int | None) -> None:
    if depth is not None and (not isinstance(depth, int) or isinstance(depth, bool) or depth < 1):
        raise ValueError(f"summarize: depth must be None (leaf modules) or an int >= 1, "
                         f"got {depth!r}")


def format_count(n: int | float) -> str:
    """``1814073344 -> "1.81G"``, ``156 -> "156"``, ``61706 -> "61.71K"``; ``0 -> "-"``."""
    if n == 0:
        return "-"
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:g}"


def _cells(row: LayerRow) -> list[str]:
    return [row.name, row.type, _shape_str(row.output_shape), f"{row.params:,}",
            f"{row.trainable:,}", format_count(row.macs), format_count(row.flops)]


def _shape_str(shape: tuple[int, ...] | None) -> str:
    return "-" if shape is None else "[" + ", ".join(map(str, shape)) + "]"


def _list_or_none(shape: tuple[int, ...] | None) -> list[int] | None:
    return None if shape is None else list(shape)
