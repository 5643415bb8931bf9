"""LeNet-5 against LeCun et al. 1998 (layer table, connection table, squashing function)."""

from __future__ import annotations

import math

import pytest
import torch

import classify
from classify.models.lenet import C3_TABLE, ScaledTanh, Subsampling, TableConv


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_layer_parameters_follow_the_paper():
    model = classify.get_model("lenet5")
    counts = {name: _count(getattr(model, name))
              for name in ("C1", "S2", "C3", "S4", "C5", "F6", "output")}
    assert counts == {"C1": 156, "S2": 12, "C3": 1516, "S4": 32, "C5": 48120, "F6": 10164,
                      "output": 850}
    assert _count(model) == 60_850


def test_relu_variant_and_options():
    relu = classify.get_model("lenet5_relu")
    assert _count(relu.C3) == 2416 and _count(relu) == 61_706
    assert isinstance(relu.S2, torch.nn.MaxPool2d) and isinstance(relu.act, torch.nn.ReLU)
    plain_pool = classify.get_model("lenet5", pooling="avg")
    assert _count(plain_pool) == 60_850 - 12 - 32
    with pytest.raises(ValueError, match=r"pooling must be one of .* got 'median'"):
        classify.get_model("lenet5", pooling="median")


def test_map_sizes_at_32x32():
    model = classify.get_model("lenet5")
    feats = model.features(torch.randn(1, 1, 32, 32))
    assert {k: tuple(v.shape[1:]) for k, v in feats.items()} == {
        "C1": (6, 28, 28), "S2": (6, 14, 14), "C3": (16, 10, 10), "S4": (16, 5, 5),
        "C5": (120, 1, 1)}
    assert model(torch.randn(3, 1, 32, 32)).shape == (3, 10)


def test_c3_connection_table_is_table_one():
    conv = TableConv(C3_TABLE, 5)
    x = torch.randn(1, 6, 14, 14, requires_grad=True)
    out = conv(x)
    for j, inputs in enumerate(C3_TABLE):
        (grad,) = torch.autograd.grad(out[0, j].sum(), x, retain_graph=True)
        connected = {i for i in range(6) if grad[0, i].abs().sum() > 0}
        assert connected == set(inputs), j
    assert [len(r) for r in C3_TABLE].count(3) == 6 and [len(r) for r in C3_TABLE].count(4) == 9


def test_squashing_function_and_subsampling():
    f = ScaledTanh()
    assert f(torch.tensor(1.0)).item() == pytest.approx(1.0, abs=2e-4)  # f(1) = 1 by design
    assert f(torch.tensor(100.0)).item() == pytest.approx(1.7159)
    pool = Subsampling(2)
    with torch.no_grad():
        pool.weight.copy_(torch.tensor([0.5, 2.0]))
        pool.bias.copy_(torch.tensor([1.0, -1.0]))
    out = pool(torch.full((1, 2, 4, 4), 3.0))
    assert out.shape == (1, 2, 2, 2)
    assert out[0, :, 0, 0].tolist() == [0.5 * 12 + 1, 2.0 * 12 - 1]


def test_initial_weights_are_lecun_uniform():
    model = classify.get_model("lenet5")
    for layer in (model.C1, model.C5, model.F6):
        fan_in = layer.weight[0].numel()
        assert layer.weight.abs().max() <= 2.4 / fan_in
        assert layer.weight.abs().max() > 2.0 / fan_in  # really spread over the range
    assert math.isclose(model.S2.weight[0].item(), 0.25)


def test_head_needs_32x32_but_features_take_larger_inputs():
    model = classify.get_model("lenet5")
    assert model.features(torch.randn(1, 1, 36, 40))["C5"].shape == (1, 120, 2, 3)
    with pytest.raises(ValueError, match=r"classifies 32x32 inputs .* C5 map of \(2, 2\)"):
        model(torch.randn(1, 1, 36, 36))
