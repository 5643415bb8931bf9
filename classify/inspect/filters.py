"""Classic image filters as named kernels, applied with ``torch.nn.functional.conv2d``.

    >>> from classify.inspect.filters import apply_filters, load_grayscale, default_image
    >>> image = load_grayscale(default_image())          # Tensor[1, H, W] in [0, 1]
    >>> out = apply_filters(image, ["sobel_x", "laplacian4"])
    >>> out["sobel_x"].shape == image.shape
    True

Kernels (``get_kernel(name)`` returns a ``Tensor[kh, kw]``; ``list_filters()`` the names):

================ ======= ====================================================================
name             size    what
================ ======= ====================================================================
mean3, mean5     3, 5    box average (sums to 1)
gaussian         2r+1    ``exp(-(x²+y²) / 2σ²)`` normalised to sum 1; ``r = ceil(3σ)``
sobel_x, sobel_y 3       derivative along x (columns) / y (rows), smoothed ``[1, 2, 1]``
prewitt_x, _y    3       derivative along x / y, smoothed ``[1, 1, 1]``
roberts_x, _y    2       Roberts cross: the two diagonal differences
laplacian4       3       ``[[0,1,0],[1,-4,1],[0,1,0]]`` (4-neighbour)
laplacian8       3       ``[[1,1,1],[1,-8,1],[1,1,1]]`` (8-neighbour)
line_horizontal  3       ``2`` on the middle row, ``-1`` elsewhere
line_vertical    3       ``2`` on the middle column
line_p45         3       ``2`` on the anti-diagonal: a line rising to the right, "/"
line_m45         3       ``2`` on the main diagonal: a line falling to the right, "\\"
================ ======= ====================================================================

Conventions:

* Kernels are applied as **cross-correlation** (``out[y, x] = sum k[i, j] * img[y+i-a, x+j-a]``),
  which is what ``conv2d`` and ``cv2.filter2D`` compute, so ``sobel_x`` is positive where the
  intensity grows to the right and ``sobel_y`` where it grows downwards (as ``cv2.Sobel``).
* The anchor ``a`` is ``k // 2`` (OpenCV's default anchor): for the 2x2 Roberts kernels the
  image is padded one pixel on the top/left and none on the bottom/right.
* Borders: ``"reflect"`` (default; mirror without repeating the edge pixel, OpenCV's
  ``BORDER_REFLECT_101`` = ``BORDER_DEFAULT``), ``"replicate"`` (``BORDER_REPLICATE``) or
  ``"zeros"`` (``BORDER_CONSTANT`` with 0).  Outputs have the input's size.
* Angles are as the image is displayed (rows growing downwards): ``line_p45`` answers "/".
  Gonzalez & Woods measure angles from an x axis pointing down and call this kernel -45°.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from classify.base.paths import require_file
from classify.inspect.kernels import _FIXED, _NAMES, BORDERS, list_filters

__all__ = [
    "BORDERS", "apply_filters", "default_image", "filter_figure", "gaussian_kernel",
    "get_kernel", "list_filters", "load_grayscale",
]

#: photos tried in order by :func:`default_image`
_OPENCV_SAMPLES = Path("/usr/share/doc/opencv-doc/examples/data")
_DEFAULT_PHOTOS = ("building.jpg", "baboon.jpg", "fruits.jpg")


def gaussian_kernel(sigma: float = 1.0, size: int | None = None) -> Tensor:
    """A normalised 2-D Gaussian ``Tensor[size, size]`` (float32, sums to 1).

    ``sigma`` is in pixels; ``size`` (odd) defaults to ``2 * ceil(3 * sigma) + 1``.  Equal to the
    outer product of ``cv2.getGaussianKernel(size, sigma)`` with itself.
    """
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0:
        raise ValueError(f"gaussian_kernel: sigma must be a number > 0 (pixels), got {sigma!r}")
    size = 2 * math.ceil(3 * sigma) + 1 if size is None else size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise ValueError(f"gaussian_kernel: size must be an odd int >= 1, got {size!r}")
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g).float()


def get_kernel(name: str, sigma: float = 1.0) -> Tensor:
    """The kernel ``name`` as a float32 ``Tensor[kh, kw]``; ``sigma`` is used by ``gaussian``."""
    if name == "gaussian":
        return gaussian_kernel(sigma)
    if name not in _FIXED:
        raise ValueError(_unknown(name))
    return torch.tensor(_FIXED[name], dtype=torch.float32)


def apply_filters(image: Tensor, names: Sequence[str] | None = None, *, sigma: float = 1.0,
                  border: str = "reflect") -> dict[str, Tensor]:
    """Filter a grayscale ``image: Tensor[1, H, W]`` with each kernel of ``names``.

    Args:
        image: float tensor ``[1, H, W]`` (any range; :func:`load_grayscale` gives [0, 1]).
        names: kernel names (default: all of :func:`list_filters`), applied in this order.
        sigma: standard deviation of ``gaussian``, in pixels.
        border: ``"reflect"``, ``"replicate"`` or ``"zeros"`` (see the module docstring).

    Returns:
        ``{name: Tensor[1, H, W]}`` in the order of ``names`` (the image's dtype and device).
    """
    _check_image(image)
    if border not in BORDERS:
        raise ValueError(f"apply_filters: border must be one of {list(BORDERS)}, got {border!r}")
    names = list_filters() if names is None else list(names)
    kernels = {name: get_kernel(name, sigma) for name in names}  # validates every name first
    return {name: _correlate(image, k, BORDERS[border]) for name, k in kernels.items()}


def _correlate(image: Tensor, kernel: Tensor, mode: str) -> Tensor:
    """Cross-correlate ``[1, H, W]`` with ``[kh, kw]`` (anchor ``k // 2``), same-size output."""
    kh, kw = kernel.shape
    pad = (kw // 2, kw - 1 - kw // 2, kh // 2, kh - 1 - kh // 2)  # left, right, top, bottom
    if mode != "constant" and (image.shape[-2] <= max(pad[2:]) or image.shape[-1] <= max(pad[:2])):
        raise ValueError(f"apply_filters: image of size {tuple(image.shape[-2:])} is too small "
                         f"for a {kh}x{kw} kernel with {mode} borders")
    padded = F.pad(image[None], pad, mode=mode)
    weight = kernel.to(device=image.device, dtype=image.dtype)[None, None]
    return F.conv2d(padded, weight)[0]


def _check_image(image: Tensor) -> None:
    if not isinstance(image, Tensor):
        raise TypeError(f"apply_filters: image must be a Tensor[1, H, W], got {type(image).__name__}")
    if image.dim() != 3 or image.shape[0] != 1:
        raise ValueError(f"apply_filters: expected a grayscale image Tensor[1, H, W], got shape "
                         f"{tuple(image.shape)} (load_grayscale() reads a file as one)")
    if not image.is_floating_point():
        raise TypeError(f"apply_filters: image must be floating point, got {image.dtype} "
                        "(divide uint8 pixels by 255)")


def _unknown(name: object) -> str:
    import difflib

    close = difflib.get_close_matches(str(name), _NAMES, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    return f"unknown filter {name!r}{hint} (known: {', '.join(_NAMES)})"


# -- images ----------------------------------------------------------------------------------

def default_image() -> Path:
    """A real photo shipped with the system: an OpenCV sample, else ultralytics' ``bus.jpg``."""
    for name in _DEFAULT_PHOTOS:
        if (_OPENCV_SAMPLES / name).is_file():
            return _OPENCV_SAMPLES / name
    spec = importlib.util.find_spec("ultralytics")
    for root in (spec.submodule_search_locations or []) if spec else []:
        if (Path(root) / "assets" / "bus.jpg").is_file():
            return Path(root) / "assets" / "bus.jpg"
    raise FileNotFoundError(f"no default image: none of {list(_DEFAULT_PHOTOS)} in "
                            f"{_OPENCV_SAMPLES} (Debian opencv-doc) nor ultralytics/assets/bus.jpg;"
                            " pass an image path")


def load_grayscale(path: str | Path) -> Tensor:
    """Read an image file as a grayscale float32 ``Tensor[1, H, W]`` in [0, 1]."""
    import cv2

    from classify.base.images import check_image_file

    path = Path(path)
    require_file(path, "image")
    check_image_file(path)  # the pixel limit, from the header, before OpenCV decodes
    pixels = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if pixels is None:
        raise ValueError(f"{path}: not an image file OpenCV can decode")
    return torch.from_numpy(pixels).float().div_(255.0)[None]


# -- figure ----------------------------------------------------------------------------------

def filter_figure(image: Tensor, results: Mapping[str, Tensor], path: str | Path, *,
                  cols: int = 4) -> Path:
    """Save a PNG grid: the input, then each response of ``results`` (``{name: [1, H, W]}``).

    Responses that are never negative (smoothing) are shown in gray on the input's [0, 1]
    scale; signed responses (derivatives, Laplacians, line detectors) on a diverging map
    centred at 0, clipped at the 99th percentile of ``|response|`` (blue < 0 < red).
    """
    from matplotlib.figure import Figure

    panels = {"input": image, **results}
    rows = math.ceil(len(panels) / cols)
    aspect = image.shape[-1] / image.shape[-2]
    fig = Figure(figsize=(3.2 * cols * aspect, 3.2 * rows + 0.4), layout="constrained")
    for ax, (name, response) in zip(fig.subplots(rows, cols, squeeze=False).flat, panels.items()):
        _show(ax, name, response.detach().float().cpu()[0])
    for ax in fig.axes[len(panels):]:
        ax.set_visible(False)
    for ax in fig.axes:
        ax.set_xticks([])
        ax.set_yticks([])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def _show(ax: object, name: str, response: Tensor) -> None:
    if response.min() >= 0:
        ax.imshow(response.numpy(), cmap="gray", vmin=0.0, vmax=max(1.0, float(response.max())))
        ax.set_title(name)
        return
    limit = float(torch.quantile(_sample(response.abs().flatten()), 0.99)) or 1.0
    ax.imshow(response.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_title(f"{name} (±{limit:.2f})")


def _sample(values: Tensor, limit: int = 1_000_000) -> Tensor:
    """Every k-th value so that at most ``limit`` remain (``torch.quantile`` has a size cap)."""
    return values[:: max(1, math.ceil(values.numel() / limit))]
