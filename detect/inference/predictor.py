"""``Predictor``: any detector (registry name, checkpoint or exported file) on images, arrays and
video frames, returning one :class:`~detect.inference.detections.Detections` each.

    >>> from detect import Predictor
    >>> predictor = Predictor("runs/detect/recipe/best.pt", conf=0.3)
    >>> [d] = predictor("street.jpg")
    >>> d.boxes, d.scores, d.names          # xyxy pixels of street.jpg, scores, class names

One code path for every detector family and backend: the model is called through the Detector
contract (``model(list[Tensor[3,H,W]] in [0,1])`` → ``{"boxes", "scores", "labels"}`` an image, in
original pixels) and its thresholds are set through ``configure_postprocess``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from classify.base.device import resolve_device, synchronize
from detect.data.image_io import read_rgb
from detect.inference.detections import Detections, Timing
from detect.inference.loop import timed_forward
from detect.inference.model_files import load_model
from detect.inference.prefetch import background
from detect.inference.video import Frame
from detect.models.postprocess import configure_postprocess

#: what a predictor takes: a file path, a PIL image, an ``uint8`` RGB array ``[H, W, 3]`` (or
#: ``[H, W]`` grey), a float ``Tensor[3, H, W]`` in [0, 1], or a video :class:`Frame`
ImageInput = Union[str, Path, Image.Image, np.ndarray, Tensor, Frame]
#: called with the source and the error of an input that could not be read
OnError = Callable[[str, Exception], None]


@dataclass
class Decoded:
    """One input read into pixels: ``image`` ``uint8[H, W, 3]`` RGB (or a float tensor given as is)."""

    image: np.ndarray | Tensor
    source: str
    frame: int | None = None
    timestamp: float | None = None
    seconds: float = 0.0


class Predictor:
    """A detector ready to run on images and video frames.

    Args:
        model: a registry name (see ``detect list``), a ``detect train`` checkpoint, an exported
            ``.onnx`` / TorchScript file (``detect export``), or a Detector module.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        backend: ``torch``, ``onnxruntime`` or ``torchscript``; ``None`` reads it from the file.
        image_size: the model's input size instead of its own (not for exported files).
        conf: score threshold; ``iou``: NMS IoU threshold; ``max_det``: detections kept an image
            (``None`` keeps the model's value).
        classes: keep only these classes (names or 0-based indices).
        batch_size: images a model call in :meth:`stream`.
        weights: local weights for a registry name; ``class_names``: names for a bare module.
        amp: autocast dtype on CUDA (``torch.float16``/``bfloat16``), ``None`` for float32.
    """

    def __init__(self, model: str | Path | nn.Module, *, device: str | torch.device = "cpu",
                 backend: str | None = None, image_size: int | None = None, conf: float | None = 0.25,
                 iou: float | None = None, max_det: int | None = None,
                 classes: Sequence[str | int] | None = None, batch_size: int = 1,
                 weights: str | Path | None = None, class_names: list[str] | None = None,
                 amp: torch.dtype | None = None) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch size: expected a positive integer, got {batch_size}")
        self.device = resolve_device(device)
        loaded = load_model(model, device=self.device, backend=backend, image_size=image_size, weights=weights,
                            class_names=class_names)
        self.model, self.class_names, self.backend, self.name = loaded.model, loaded.class_names, loaded.backend, loaded.name
        self.settings = configure_postprocess(self.model, score_threshold=conf, nms_threshold=iou,
                                              max_detections=max_det)
        self.class_filter = class_indices(classes, self.class_names)
        self.batch_size = batch_size
        self.amp = amp if self.device.type == "cuda" else None

    def __call__(self, images: ImageInput | Sequence[ImageInput]) -> list[Detections]:
        """Detections of one input or of each of a list (errors raised, not skipped)."""
        items = [images] if _is_single(images) else list(images)  # type: ignore[arg-type]
        return list(self.stream(items, prefetch=False))

    def stream(self, items: Iterable[ImageInput], *, on_error: OnError | None = None,
               prefetch: bool = True) -> Iterator[Detections]:
        """Detections of each input in order, ``batch_size`` inputs a model call.

        With ``prefetch``, inputs are read into pixels in a background thread (a bounded queue a few
        batches deep) while the model runs. An input that cannot be read is passed to
        ``on_error(source, error)`` and skipped; without ``on_error`` the error is raised.
        """
        for detections, _ in self.stream_with_images(items, on_error=on_error, prefetch=prefetch):
            yield detections

    def stream_with_images(self, items: Iterable[ImageInput], *, on_error: OnError | None = None,
                           prefetch: bool = True) -> Iterator[tuple[Detections, np.ndarray | Tensor]]:
        """:meth:`stream`, each result with the pixels it was found in (``uint8[H, W, 3]`` RGB, or
        the tensor given), for drawing and cropping."""
        decoded: Iterable[Decoded | tuple[str, Exception]] = (_decode_or_error(item, i) for i, item in enumerate(items))
        if prefetch:
            decoded = background(decoded, maxsize=2 * self.batch_size + 2)
        batch: list[Decoded] = []
        for entry in decoded:
            if isinstance(entry, tuple):
                if on_error is None:
                    raise entry[1]
                on_error(*entry)
                continue
            batch.append(entry)
            if len(batch) == self.batch_size:
                yield from zip(self.predict_decoded(batch), (d.image for d in batch))
                batch = []
        if batch:
            yield from zip(self.predict_decoded(batch), (d.image for d in batch))

    @torch.inference_mode()
    def predict_decoded(self, batch: Sequence[Decoded]) -> list[Detections]:
        """One model call over ``batch`` (already read into pixels)."""
        start = time.perf_counter()
        tensors = [to_tensor(d.image, self.device) for d in batch]
        synchronize(self.device)
        preprocess = (time.perf_counter() - start) / len(batch)
        outputs, seconds = timed_forward(self.model, tensors, self.device, self.amp)
        model_seconds = seconds / len(batch)
        results = []
        for d, tensor, out in zip(batch, tensors, outputs):
            start = time.perf_counter()
            detections = self._detections(d, tensor, out)
            detections.timing = Timing(d.seconds, preprocess, model_seconds, time.perf_counter() - start)
            results.append(detections)
        return results

    def _detections(self, d: Decoded, tensor: Tensor, out: dict[str, Tensor]) -> Detections:
        labels = out["labels"].cpu().numpy()
        keep = np.isin(labels, self.class_filter) if self.class_filter is not None else slice(None)
        height, width = tensor.shape[-2:]
        return Detections(out["boxes"].float().cpu().numpy()[keep], out["scores"].float().cpu().numpy()[keep],
                          labels[keep], self.class_names, (int(width), int(height)), d.source, d.frame, d.timestamp)


def class_indices(classes: Sequence[str | int] | None, class_names: Sequence[str]) -> np.ndarray | None:
    """0-based indices of ``classes`` (names or indices); ``None`` keeps every class.

    Raises:
        ValueError: a name or index the model does not predict (the message lists its classes).
    """
    if classes is None:
        return None
    indices = []
    for c in classes:
        if isinstance(c, str) and not c.lstrip("-").isdigit():
            if c not in class_names:
                raise ValueError(f"class {c!r} is not one the model predicts ({_listed(class_names)})")
            indices.append(list(class_names).index(c))
        elif not 0 <= int(c) < len(class_names):
            raise ValueError(f"class index {c} is out of range: the model predicts {len(class_names)} classes "
                             f"({_listed(class_names)})")
        else:
            indices.append(int(c))
    return np.array(sorted(set(indices)), dtype=np.int64)


def _listed(names: Sequence[str], n: int = 12) -> str:
    shown = ", ".join(f"{i}={name}" for i, name in enumerate(islice(names, n)))
    return shown + (", ..." if len(names) > n else "")


def _is_single(images: Any) -> bool:
    return isinstance(images, (str, Path, Image.Image, np.ndarray, Tensor, Frame))


def decode(item: ImageInput, index: int = 0) -> Decoded:
    """Read one input into pixels, timed (see :data:`ImageInput`).

    Raises:
        FileNotFoundError, classify.base.images.ImageDecodeError: a path that is not a readable image.
        ValueError: an array or tensor of the wrong shape or type.
    """
    start = time.perf_counter()
    if isinstance(item, Frame):
        return Decoded(item.image, "", item.index, item.timestamp, 0.0)
    if isinstance(item, (str, Path)):
        image, source = read_rgb(Path(item)), str(item)
    elif isinstance(item, Image.Image):
        image, source = np.asarray(item.convert("RGB")), f"<image {index}>"
    elif isinstance(item, np.ndarray):
        image, source = _rgb_array(item, index), f"<array {index}>"
    elif isinstance(item, Tensor):
        if item.ndim != 3 or item.shape[0] != 3 or not item.is_floating_point():
            raise ValueError(f"input {index}: expected a float Tensor[3, H, W] in [0, 1], got "
                             f"{item.dtype} {list(item.shape)}")
        image, source = item, f"<tensor {index}>"
    else:
        raise ValueError(f"input {index}: expected a path, a PIL image, an array or a tensor, got {type(item).__name__}")
    return Decoded(image, source, seconds=time.perf_counter() - start)


def _decode_or_error(item: ImageInput, index: int) -> Decoded | tuple[str, Exception]:
    try:
        return decode(item, index)
    except (OSError, ValueError) as exc:
        return str(item) if isinstance(item, (str, Path)) else f"<input {index}>", exc


def _rgb_array(array: np.ndarray, index: int) -> np.ndarray:
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise ValueError(f"input {index}: expected an uint8 RGB array [H, W, 3] (or [H, W] grey), got "
                         f"{array.dtype} {list(array.shape)}")
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    return array[:, :, :3]


def to_tensor(image: np.ndarray | Tensor, device: torch.device) -> Tensor:
    """``uint8[H, W, 3]`` RGB → float ``Tensor[3, H, W]`` in [0, 1] on ``device`` (a float tensor is moved as is)."""
    if isinstance(image, Tensor):
        return image.to(device)
    if not image.flags.writeable or not image.flags.c_contiguous:
        image = np.array(image)  # torch.from_numpy needs a writable, contiguous array
    tensor = torch.from_numpy(image).to(device, non_blocking=True)
    return tensor.permute(2, 0, 1).float().div_(255)
