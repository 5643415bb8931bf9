"""Device names and mixed-precision names."""

from __future__ import annotations

import pytest
import torch

from classify.base.device import amp_dtype, resolve_device, slow_bf16_note


def test_amp_names_map_to_the_autocast_dtype_of_the_device() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert [amp_dtype(name, cpu) for name in ("none", "bf16", "fp16")] == [None, torch.bfloat16, None]
    assert [amp_dtype(name, cuda) for name in ("none", "bf16", "fp16")] == [None, torch.bfloat16, torch.float16]


def test_resolve_device_checks_the_name() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="expected auto, cpu, cuda or cuda:N, got 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available here; use --device cpu"):
            resolve_device("cuda")


def test_bf16_on_a_cpu_without_native_support_gets_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert "may train slower than float32" in slow_bf16_note("bf16", cpu)
    assert slow_bf16_note("none", cpu) is None and slow_bf16_note("bf16", torch.device("cuda")) is None
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert slow_bf16_note("bf16", cpu) is None
