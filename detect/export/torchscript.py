"""Writing an export graph as a TorchScript file.

``torch.jit.trace`` of the graph (not ``torch.jit.script``: torchvision's detection code and the
ultralytics networks are traceable but our wrappers are not scriptable); shapes read from the
input stay dynamic in the trace (the graphs compute them with tensor operations), so one file
takes any batch size and image size.  The file needs ``torchvision`` imported before
``torch.jit.load`` (its ``nms`` and ``roi_align`` operators).  ``torch.jit`` is deprecated in
torch 2.14 (a ``FutureWarning``, silenced here) but still writes and loads these files.

The metadata travels in ``_extra_files`` (``metadata.json``); the file is written atomically.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor

from classify.base.atomic import atomic_write
from detect.export.graph import ExportGraph
from detect.export.metadata import METADATA_KEY

__all__ = ["EXPORTER", "trace_graph", "write_torchscript"]

EXPORTER = f"torch.jit.trace, torch {torch.__version__}"


def trace_graph(graph: ExportGraph, example: Tensor) -> torch.jit.ScriptModule:
    """``torch.jit.trace`` of ``graph`` on ``example``, its tracer and deprecation warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        with torch.no_grad():
            return torch.jit.trace(graph, (example,), check_trace=False)


def write_torchscript(graph: ExportGraph, example: Tensor, path: Path, metadata_json: str) -> Path:
    """Trace ``graph`` on ``example`` and save it with ``metadata_json`` at ``path``."""
    traced = trace_graph(graph, example)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        return atomic_write(path, lambda tmp: torch.jit.save(traced, str(tmp), _extra_files={METADATA_KEY: metadata_json}))
