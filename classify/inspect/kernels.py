"""The classic kernels' coefficients and names, without torch (so ``classify --help`` can list
them instantly); :mod:`classify.inspect.filters` turns them into tensors and applies them."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["BORDERS", "list_filters"]

_FIXED: Mapping[str, tuple[tuple[float, ...], ...]] = MappingProxyType({
    "mean3": ((1 / 9,) * 3,) * 3,
    "mean5": ((1 / 25,) * 5,) * 5,
    "sobel_x": ((-1, 0, 1), (-2, 0, 2), (-1, 0, 1)),
    "sobel_y": ((-1, -2, -1), (0, 0, 0), (1, 2, 1)),
    "prewitt_x": ((-1, 0, 1), (-1, 0, 1), (-1, 0, 1)),
    "prewitt_y": ((-1, -1, -1), (0, 0, 0), (1, 1, 1)),
    "roberts_x": ((1, 0), (0, -1)),
    "roberts_y": ((0, 1), (-1, 0)),
    "laplacian4": ((0, 1, 0), (1, -4, 1), (0, 1, 0)),
    "laplacian8": ((1, 1, 1), (1, -8, 1), (1, 1, 1)),
    "line_horizontal": ((-1, -1, -1), (2, 2, 2), (-1, -1, -1)),
    "line_vertical": ((-1, 2, -1), (-1, 2, -1), (-1, 2, -1)),
    "line_p45": ((-1, -1, 2), (-1, 2, -1), (2, -1, -1)),
    "line_m45": ((2, -1, -1), (-1, 2, -1), (-1, -1, 2)),
})
_NAMES = ("mean3", "mean5", "gaussian", *list(_FIXED)[2:])
BORDERS = MappingProxyType({"reflect": "reflect", "replicate": "replicate", "zeros": "constant"})


def list_filters() -> list[str]:
    """The kernel names understood by :func:`classify.inspect.filters.get_kernel` and ``apply_filters``."""
    return list(_NAMES)
