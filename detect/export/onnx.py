"""Writing an export graph as an ONNX file.

Exporter: ``torch.onnx.export(..., dynamo=False)``, the TorchScript-based exporter.  torch 2.14's
default (``dynamo=True``) exporter needs ``onnxscript``, which is neither installed nor a
dependency of the project (it fails with ``ModuleNotFoundError: onnxscript``); the TorchScript
exporter is the one torchvision's detection models are tested with, maps ``torchvision::nms`` to
``NonMaxSuppression`` and ``torchvision::roi_align`` to ``RoiAlign``, and keeps shapes computed
from the input dynamic.  It is deprecated in torch (a ``DeprecationWarning``, silenced here).

Opset: :data:`DEFAULT_OPSET` = 18, the first with antialiased ``Resize`` (the YOLO letterbox
resizes with ``antialias=True``, mapped by :func:`register_antialias_resize`; ONNX Runtime's
``exclude_outside=1`` matches torch's weights).  Opsets :data:`MIN_OPSET` to :data:`MAX_OPSET`
are accepted (16: ``RoiAlign`` with torchvision's half-pixel convention; 20: the last the
TorchScript exporter knows); YOLO graphs need 18 or later.

The file is validated with ``onnx.checker.check_model`` (unless ``check=False``), optionally
simplified with ``onnxslim``, and written atomically (temporary file + rename).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor

from classify.base.atomic import atomic_write
from detect.export.graph import INPUT_NAME, OUTPUT_NAMES, ExportGraph
from detect.export.metadata import METADATA_KEY

__all__ = ["DEFAULT_OPSET", "EXPORTER", "MAX_OPSET", "MIN_OPSET", "check_opset", "register_antialias_resize",
           "write_onnx"]

DEFAULT_OPSET = 18
MIN_OPSET = 16
MAX_OPSET = 20
ANTIALIAS_OPSET = 18
EXPORTER = f"torch.onnx.export(dynamo=False) (TorchScript-based), torch {torch.__version__}"

_registered = False


def check_opset(opset: int, graph: ExportGraph) -> None:
    """Raise ``ValueError`` for an opset the exporter or ``graph`` cannot use."""
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset {opset}: expected {MIN_OPSET} to {MAX_OPSET} (the TorchScript-based ONNX exporter "
                         f"of torch {torch.__version__} writes up to {MAX_OPSET}; default {DEFAULT_OPSET})")
    if graph.family == "yolo" and opset < ANTIALIAS_OPSET:
        raise ValueError(f"opset {opset}: the YOLO letterbox resizes with antialiasing, which ONNX's Resize has "
                         f"from opset {ANTIALIAS_OPSET}; use --opset {ANTIALIAS_OPSET} or later")


def register_antialias_resize() -> None:
    """Teach the TorchScript-based exporter ``aten::_upsample_bilinear2d_aa`` (``F.interpolate(...,
    mode="bilinear", antialias=True)``): ONNX ``Resize`` (opset 18) with ``antialias=1`` and
    ``exclude_outside=1``.  Registered once per process."""
    global _registered
    if _registered:
        return
    from torch.onnx import register_custom_op_symbolic, symbolic_helper

    def resize_antialias(g, image, output_size, align_corners, scale_factors):
        if symbolic_helper._maybe_get_const(align_corners, "b"):
            raise ValueError("antialiased resize with align_corners=True has no ONNX Resize equivalent")
        if symbolic_helper._is_packed_list(output_size):
            one = g.op("Constant", value_t=torch.tensor([1], dtype=torch.int64))
            sides = [g.op("Reshape", g.op("Cast", v, to_i=7), one) for v in symbolic_helper._unpack_list(output_size)]
            size = g.op("Concat", *sides, axis_i=0)
        else:
            size = g.op("Constant", value_t=torch.tensor(symbolic_helper._maybe_get_const(output_size, "is"),
                                                         dtype=torch.int64))
        shape = g.op("Shape", image)
        batch_channels = g.op("Slice", shape, g.op("Constant", value_t=torch.tensor([0])),
                              g.op("Constant", value_t=torch.tensor([2])))
        sizes = g.op("Concat", batch_channels, size, axis_i=0)
        empty = g.op("Constant", value_t=torch.tensor([], dtype=torch.float32))
        resized = g.op("Resize", image, empty, empty, sizes, mode_s="linear",
                       coordinate_transformation_mode_s="half_pixel", antialias_i=1, exclude_outside_i=1)
        kind = image.type()
        if isinstance(kind, torch._C.TensorType) and kind.dim() is not None:  # rank and dtype, sizes unknown
            resized.setType(kind.with_sizes([None] * kind.dim()))
        return resized

    register_custom_op_symbolic("aten::_upsample_bilinear2d_aa", resize_antialias, ANTIALIAS_OPSET)
    _registered = True


def write_onnx(graph: ExportGraph, example: Tensor, path: Path, metadata_json: str, *, opset: int = DEFAULT_OPSET,
               dynamic: bool = True, simplify: bool = False, check: bool = True) -> Path:
    """Trace ``graph`` on ``example`` (``float32[N, 3, H, W]``) into an ONNX file at ``path``.

    ``dynamic``: batch, height and width of the input are free (``batch``, ``height``,
    ``width``); otherwise the input shape is the example's.  The outputs' first dimension
    (``detections``) is always free.  ``metadata_json`` goes to ``metadata_props``.
    """
    import onnx

    check_opset(opset, graph)
    register_antialias_resize()
    axes = {name: {0: "detections"} for name in OUTPUT_NAMES}
    if dynamic:
        axes[INPUT_NAME] = {0: "batch", 2: "height", 3: "width"}
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
        traced = Path(tmp) / "graph.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            torch.onnx.export(graph, (example,), str(traced), dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES), dynamic_axes=axes,
                              do_constant_folding=True)
        model = onnx.load(str(traced))
    if simplify:
        import onnxslim

        model = onnxslim.slim(model)
        # onnxslim's shape inference gives the antialiased Resize a rank-0 output, which the checker
        # refuses; the intermediate shapes are optional (ONNX Runtime infers its own)
        del model.graph.value_info[:]
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, metadata_json
    if check:
        onnx.checker.check_model(model, full_check=True)
    return atomic_write(path, lambda tmp: onnx.save(model, str(tmp)))
