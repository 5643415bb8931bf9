"""Building blocks every YOLO network here uses: input normalisation, conv + BN + activation, grids."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from classify.models.registry import get_model_entry

__all__ = ["ConvBnAct", "InputNormalize", "cell_grid"]

ACTIVATIONS = {"silu": nn.SiLU, "leaky": lambda: nn.LeakyReLU(0.1), "relu": nn.ReLU}


class InputNormalize(nn.Module):
    """``(x - mean) / std`` per channel: ``Tensor[N, 3, H, W]`` in [0, 1] -> the backbone's input."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    @classmethod
    def for_backbone(cls, name: str) -> InputNormalize:
        """The normalisation the zoo model ``name`` was trained with (its registry entry's)."""
        entry = get_model_entry(name)
        return cls(entry.mean, entry.std)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


class ConvBnAct(nn.Sequential):
    """``Conv2d`` (no bias, 'same' padding for odd kernels) -> ``BatchNorm2d`` -> activation.

    ``activation``: ``"silu"`` (YOLOv5 onward), ``"leaky"`` (LeakyReLU 0.1, YOLOv1-v3) or ``"relu"``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 activation: str = "silu", groups: int = 1) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {activation!r}")
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
            ACTIVATIONS[activation](),
        )


def cell_grid(height: int, width: int, device: torch.device | None = None,
              dtype: torch.dtype = torch.float32) -> Tensor:
    """``Tensor[height * width, 2]``: the ``(x, y)`` index of every cell of a map, row-major
    (the order of ``map.flatten(2)``)."""
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=dtype),
                            torch.arange(width, device=device, dtype=dtype), indexing="ij")
    return torch.stack((xs.reshape(-1), ys.reshape(-1)), dim=1)
