"""Turning a user's device name into a checked ``torch.device``, a mixed-precision name into its
autocast dtype there, and synchronising a device around a timed call."""

from __future__ import annotations

import contextlib

import torch


def resolve_device(name: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else must be a usable torch device.

    Raises:
        ValueError: an unknown device name, or CUDA asked for where there is none.
    """
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"device: expected auto, cpu, cuda or cuda:N, got {str(name)!r} ({exc})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(name)!r} requested but CUDA is not available here; use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device: expected auto, cpu, cuda or cuda:N, got {str(name)!r}")
    return device


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``amp`` ("none", "bf16", "fp16") on ``device``; ``None``: float32.

    bfloat16 runs on CUDA and on the CPU (oneDNN uses AMX / AVX-512 BF16 where the CPU has them);
    float16 is CUDA-only (``None`` on the CPU).
    """
    if amp == "fp16":
        return torch.float16 if device.type == "cuda" else None
    return torch.bfloat16 if amp == "bf16" else None


def slow_bf16_note(amp: str, device: torch.device) -> str | None:
    """A note when ``amp="bf16"`` runs on a CPU without native bfloat16 (AMX / AVX-512 BF16), where
    oneDNN emulates it and training may be slower than in float32; ``None`` otherwise."""
    if amp != "bf16" or device.type != "cpu" or torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return None
    return ("note: amp=bf16 on a CPU without native bfloat16 (AMX / AVX-512 BF16): it is emulated and "
            "may train slower than float32 (amp: none)")


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device`` (``None``: float32, no autocast)."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work (CUDA kernels run asynchronously); a no-op on the CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
