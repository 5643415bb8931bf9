"""Running an exported file as a detector: ``load_exported(path, device) -> ExportedDetector``.

:class:`ExportedDetector` follows the Detector contract (docs/design.md) like the eager model it
was exported from: ``detector(images: list[Tensor[3, H, W]] in [0, 1])`` in eval mode returns one
``{"boxes": float32[K, 4] xyxy pixels of the image, "scores": float32[K], "labels": int64[K]}``
per image, on the detector's device; it has ``class_names``, ``metadata``,
``configure_postprocess`` / ``postprocess_settings`` and the module methods callers use
(``eval()``, ``to(device)``, ``training``).  ONNX files run in ONNX Runtime (graph optimisation
level ALL, ``torch.get_num_threads()`` intra-op threads, the CUDA provider on a CUDA device when
installed); TorchScript files with ``torch.jit.load``, on the device type they were traced on
(``detect export --device``).

Images of one size run as one batch (one graph call); a list of differently sized images runs
one call per size, in input order.  (An eager Faster R-CNN pads a mixed-size batch to one size
instead, which changes its detections slightly; for same-size images the two agree.)

Post-processing baked into the graph can only be tightened: a higher score threshold and fewer
detections an image filter the graph's output (the same result as running with them, since NMS
keeps a box whatever lower-scoring boxes do); a lower threshold, more detections or another NMS
IoU raise ``ValueError`` saying how to re-export.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from classify.base.paths import require_file
from detect.export.graph import INPUT_NAME, OUTPUT_NAMES
from detect.export.metadata import METADATA_KEY, ExportMetadata
from detect.models.postprocess import PostprocessSettings, check_settings

__all__ = ["ExportedDetector", "load_exported", "read_metadata"]

_ZIP_METADATA = f"extra/{METADATA_KEY}"


def read_metadata(path: str | Path) -> tuple[str, ExportMetadata]:
    """``(file format, metadata)`` of an exported file, without loading its graph.

    Raises:
        FileNotFoundError: no file at ``path`` (``IsADirectoryError`` for a folder).
        ValueError: not an ONNX or TorchScript file, or one without this project's metadata.
    """
    path = Path(path)
    require_file(path, "exported model")
    if zipfile.is_zipfile(path):
        return "torchscript", _torchscript_metadata(path)
    return "onnx", _onnx_metadata(path)


def _torchscript_metadata(path: Path) -> ExportMetadata:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        found = [n for n in names if n.split("/", 1)[-1] == _ZIP_METADATA]
        if found:
            return ExportMetadata.from_json(archive.read(found[0]), str(path))
    if any(n.split("/", 1)[-1].startswith("code/") for n in names):
        raise ValueError(f"{path}: a TorchScript file without detect export metadata ({METADATA_KEY} in its extra "
                         "files); export the model with 'detect export' to run it as a detector")
    if any(n.endswith("data.pkl") for n in names):
        raise ValueError(f"{path}: a torch.save file (weights or a checkpoint), not an exported model; run it with "
                         "--checkpoint / --weights, or export it with 'detect export'")
    raise ValueError(f"{path}: a zip archive that is neither an ONNX nor a TorchScript model")


def _onnx_metadata(path: Path) -> ExportMetadata:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as err:
        raise ValueError(f"{path}: not an ONNX or TorchScript model ({type(err).__name__}: {err}); expected a file "
                         "written by 'detect export'") from err
    if not model.graph.node:
        raise ValueError(f"{path}: not an ONNX or TorchScript model (no graph could be read); expected a file written "
                         "by 'detect export'")
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        keys = ", ".join(sorted(props)) or "none"
        raise ValueError(f"{path}: an ONNX model without detect export metadata (metadata_props key {METADATA_KEY!r}; "
                         f"it has: {keys}); export the model with 'detect export' to run it as a detector")
    return ExportMetadata.from_json(props[METADATA_KEY], str(path))


def load_exported(path: str | Path, device: str | torch.device = "cpu") -> ExportedDetector:
    """The exported detector at ``path`` (an ``.onnx`` or TorchScript file written by
    :func:`detect.export.exporter.export_detector`) on ``device``, in eval mode.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: an unknown file, a file without this project's metadata, a device its
            runtime cannot use.
    """
    file_format, metadata = read_metadata(path)
    if file_format != metadata.file_format:
        raise ValueError(f"{path}: a {file_format} file whose metadata says {metadata.file_format}")
    return ExportedDetector(Path(path), metadata, torch.device(device))


class _OnnxBackend:
    """An ONNX Runtime session over the file."""

    def __init__(self, path: Path, device: torch.device) -> None:
        self.path = path
        self.device = device
        self.session = self._session(device)

    def _session(self, device: torch.device) -> Any:
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ValueError(f"{self.path}: onnxruntime here has no CUDA provider (available: "
                                 f"{', '.join(ort.get_available_providers())}); run ONNX files on the CPU or "
                                 "install onnxruntime-gpu")
            providers = [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
        elif device.type != "cpu":
            raise ValueError(f"{self.path}: ONNX files run on cpu or cuda, not {device}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = torch.get_num_threads()
        return ort.InferenceSession(str(self.path), sess_options=options, providers=providers)

    def to(self, device: torch.device) -> None:
        if device != self.device:
            self.session = self._session(device)
            self.device = device

    def __call__(self, batch: Tensor) -> list[Tensor]:
        array = batch.detach().to("cpu", torch.float32).contiguous().numpy()
        outputs = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: array})
        return [torch.from_numpy(o) for o in outputs]


class _TorchScriptBackend(nn.Module):
    """A ``torch.jit.load``-ed graph (a submodule, so ``.to()`` moves it)."""

    def __init__(self, path: Path, device: torch.device, traced_on: str) -> None:
        super().__init__()
        import warnings

        import torchvision  # noqa: F401 - registers the nms / roi_align operators the file calls

        self.path, self.traced_on = path, traced_on
        self._check(device)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            self.graph = torch.jit.load(str(path), map_location=device).eval()
        self.device = device

    def _check(self, device: torch.device) -> None:
        if device.type != self.traced_on:
            raise ValueError(f"{self.path}: a TorchScript file traced on {self.traced_on} runs there only (the trace "
                             f"fixes the device of the tensors it creates); export it again with --device "
                             f"{device.type}, or use the ONNX format")

    def move(self, device: torch.device) -> None:
        self._check(device)
        self.graph.to(device)
        self.device = device

    def forward(self, batch: Tensor) -> list[Tensor]:
        with torch.no_grad():
            return list(self.graph(batch.to(self.device, torch.float32)))


class ExportedDetector(nn.Module):
    """An exported file behind the Detector contract (see the module docstring).

    Attributes:
        path: the file; ``metadata``: its :class:`ExportMetadata`; ``class_names``: its classes.
    """

    def __init__(self, path: Path, metadata: ExportMetadata, device: torch.device) -> None:
        super().__init__()
        self.path, self.metadata = path, metadata
        self.class_names = list(metadata.class_names)
        self._baked = metadata.settings
        self._settings = metadata.settings
        if metadata.file_format == "onnx":
            self._onnx: _OnnxBackend | None = _OnnxBackend(path, device)
            self.backend = None
        else:
            self._onnx = None
            self.backend = _TorchScriptBackend(path, device, metadata.device or "cpu")
        self._device = device
        super().train(False)

    def __repr__(self) -> str:
        return (f"ExportedDetector({self.path}, {self.metadata.file_format}, detector={self.metadata.detector!r}, "
                f"device={self._device})")

    # -- module behaviour ----------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self._device

    def train(self, mode: bool = True) -> ExportedDetector:
        if mode:
            raise ValueError(f"{self.path}: an exported detector runs inference only; it cannot be trained")
        return super().train(False)

    def to(self, *args: Any, **kwargs: Any) -> ExportedDetector:
        device, dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
        if dtype is not None and dtype != torch.float32:
            raise ValueError(f"{self.path}: an exported detector runs in float32, not {dtype}")
        if device is not None:
            device = torch.device(device)
            if device.type == "cuda" and device.index is None:
                device = torch.device("cuda", torch.cuda.current_device() if torch.cuda.is_available() else 0)
            if self._onnx is not None:
                self._onnx.to(device)
            else:
                self.backend.move(device)
            self._device = device
        return self

    def cpu(self) -> ExportedDetector:
        return self.to("cpu")

    def cuda(self, device: int | torch.device | None = None) -> ExportedDetector:
        return self.to(torch.device("cuda", device) if isinstance(device, int) else (device or "cuda"))

    # -- post-processing ------------------------------------------------------------------------
    def postprocess_settings(self) -> PostprocessSettings:
        return self._settings

    def configure_postprocess(self, score_threshold: float | None = None, nms_threshold: float | None = None,
                              max_detections: int | None = None) -> None:
        """Tighten the baked post-processing (see the module docstring); ``None`` keeps a value."""
        check_settings(score_threshold, nms_threshold, max_detections)
        baked, how = self._baked, "re-export the model with"
        if nms_threshold is not None and not math.isclose(nms_threshold, baked.nms_threshold, abs_tol=1e-9):
            raise ValueError(f"{self.path}: NMS runs inside the exported graph at IoU {baked.nms_threshold:g}; "
                             f"for IoU {nms_threshold:g} {how} --iou {nms_threshold:g}")
        if score_threshold is not None and score_threshold < baked.score_threshold:
            raise ValueError(f"{self.path}: the exported graph drops scores at or below {baked.score_threshold:g}; "
                             f"for a threshold of {score_threshold:g} {how} --score-threshold {score_threshold:g}")
        if max_detections is not None and max_detections > baked.max_detections:
            raise ValueError(f"{self.path}: the exported graph keeps at most {baked.max_detections} detections an "
                             f"image; for {max_detections} {how} --max-det {max_detections}")
        current = self._settings
        self._settings = PostprocessSettings(
            current.score_threshold if score_threshold is None else float(score_threshold), baked.nms_threshold,
            current.max_detections if max_detections is None else int(max_detections))

    # -- inference ------------------------------------------------------------------------------
    def forward(self, images: Sequence[Tensor], targets: Sequence[dict] | None = None) -> list[dict[str, Tensor]]:
        if targets is not None:
            raise ValueError(f"{self.path}: an exported detector runs inference only; call it without targets")
        _check_images(images)
        fixed = self.metadata.input.get("shape")
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(tuple(image.shape[-2:]), []).append(i)
        results: list[dict[str, Tensor] | None] = [None] * len(images)
        for size, indices in groups.items():
            for chunk in self._chunks(indices, size, fixed):
                outputs = self._run(torch.stack([images[i] for i in chunk]))
                for j, i in enumerate(chunk):
                    results[i] = self._select(outputs, j)
        return results  # type: ignore[return-value]

    def _chunks(self, indices: list[int], size: tuple[int, int], fixed: list[int] | None) -> list[list[int]]:
        """The calls for one image size: all at once, or (a fixed-shape file) one per its batch."""
        if fixed is None:
            return [indices]
        if list(size) != list(fixed[2:]):
            raise ValueError(f"{self.path}: exported for {fixed[2]} x {fixed[3]} images only (static shapes); got "
                             f"{size[0]} x {size[1]}: resize the images or re-export with dynamic shapes")
        batch = int(fixed[0])
        if len(indices) % batch:
            raise ValueError(f"{self.path}: exported for batches of exactly {batch} images (static shapes); got "
                             f"{len(indices)} of {size[0]} x {size[1]}: re-export with dynamic shapes")
        return [indices[k:k + batch] for k in range(0, len(indices), batch)]

    def _run(self, batch: Tensor) -> list[Tensor]:
        if self._onnx is not None:
            return self._onnx(batch)
        return self.backend(batch)

    def _select(self, outputs: list[Tensor], image: int) -> dict[str, Tensor]:
        boxes, scores, labels, batch_index = outputs
        keep = batch_index == image
        if self._settings.score_threshold > self._baked.score_threshold:
            keep &= scores > self._settings.score_threshold
        index = torch.where(keep)[0][: self._settings.max_detections]
        device = self._device
        return {"boxes": boxes[index].to(device, torch.float32), "scores": scores[index].to(device, torch.float32),
                "labels": labels[index].to(device, torch.int64)}


def _check_images(images: Sequence[Tensor]) -> None:
    if isinstance(images, Tensor) or not isinstance(images, Sequence) or not images:
        raise TypeError(f"images: expected a non-empty list of Tensor[3, H, W] in [0, 1], got {type(images).__name__}")
    for i, image in enumerate(images):
        if not isinstance(image, Tensor) or image.ndim != 3 or image.shape[0] != 3:
            shape = list(image.shape) if isinstance(image, Tensor) else type(image).__name__
            raise ValueError(f"images[{i}]: expected Tensor[3, H, W] in [0, 1], got {shape}")
        if not image.is_floating_point():
            raise TypeError(f"images[{i}]: expected a float image in [0, 1], got {image.dtype}")

