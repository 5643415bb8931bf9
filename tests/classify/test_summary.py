"""``classify.inspect.summary``: published parameter and MAC counts, exact per-layer numbers, renderers."""

from __future__ import annotations

import json

import pytest
import torch
from rich.console import Console
from torch import nn

from classify import get_model
from classify.inspect.summary import OTHER, format_count, summarize


def meta_model(name: str, **kw: object) -> nn.Module:
    with torch.device("meta"):
        return get_model(name, **kw)


# MACs for one 224x224 image.  The ResNet paper's Table 1 "FLOPs" are multiply-adds:
# 1.8 / 3.6 / 3.8 / 7.6 / 11.3 G.  torchvision's ResNet-50/101/152 are v1.5 (stride 2 in the 3x3
# conv of the down-sampling bottleneck), hence 4.09 / 7.80 / 11.51 G; torchvision documents
# 1.81 / 3.66 / 4.09 / 7.80 / 11.51 "GFLOPS" (MACs) and these parameter counts.
RESNETS = {
    "resnet18": (11_689_512, 1_814_073_344, 1.81),
    "resnet34": (21_797_672, 3_663_761_408, 3.66),
    "resnet50": (25_557_032, 4_089_184_256, 4.09),
    "resnet101": (44_549_160, 7_801_405_440, 7.80),
    "resnet152": (60_192_808, 11_513_626_624, 11.51),
}


@pytest.mark.parametrize("name", list(RESNETS))
def test_resnet_params_and_macs_match_published_tables(name: str) -> None:
    params, macs, published_gmacs = RESNETS[name]
    s = summarize(meta_model(name), (3, 224, 224))
    assert s.total_params == s.trainable_params == params
    assert s.macs == macs
    assert s.flops == 2 * macs
    assert s.macs / 1e9 == pytest.approx(published_gmacs, rel=0.01)
    assert s.output_shape == (1, 1000)


def test_resnet18_and_34_agree_with_the_paper_within_2_percent() -> None:
    # basic-block ResNets are unchanged by v1.5: paper Table 1 says 1.8 and 3.6 GFLOPs (MACs)
    assert summarize(meta_model("resnet18"), (3, 224, 224)).macs / 1e9 == pytest.approx(1.8, rel=0.02)
    assert summarize(meta_model("resnet34"), (3, 224, 224)).macs / 1e9 == pytest.approx(3.6, rel=0.02)


def test_vgg16_has_138_million_params_and_15_5_gmacs() -> None:
    s = summarize(meta_model("vgg16"), (3, 224, 224))
    assert s.total_params == 138_357_544
    assert s.macs == 15_470_264_320  # "15.5 GFLOPs" in course tables (multiply-adds)


def test_lenet5_c1_row_on_a_real_cpu_model() -> None:
    s = summarize(get_model("lenet5"), (1, 32, 32))
    c1 = next(r for r in s.rows if r.name == "C1")
    assert (c1.type, c1.params, c1.output_shape) == ("Conv2d", 156, (1, 6, 28, 28))
    assert c1.macs == 28 * 28 * 6 * 5 * 5  # 117,600
    assert s.total_params == 60_850
    assert s.output_shape == (1, 10)


class TwoLayers(nn.Module):
    """conv 3->8 (3x3, pad 1) on 8x8, flatten, linear 512->10, then a matmul in forward."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(512, 10)
        self.proj = nn.Parameter(torch.ones(10, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).flatten(1)) @ self.proj


def test_exact_counts_and_the_other_row_of_a_hand_checked_model() -> None:
    model = TwoLayers()
    model.conv.weight.requires_grad_(False)
    s = summarize(model, (3, 8, 8))
    rows = {r.name: r for r in s.rows}
    assert list(rows) == ["conv", "fc", OTHER]
    assert rows["conv"].macs == 8 * 8 * 8 * 3 * 3 * 3  # 13,824: bias adds are not counted
    assert (rows["conv"].params, rows["conv"].trainable) == (224, 8)
    assert rows["fc"].macs == 512 * 10 and rows["fc"].output_shape == (1, 10)
    assert (rows[OTHER].params, rows[OTHER].macs) == (40, 10 * 4)  # proj and its matmul
    assert s.macs == 13_824 + 5_120 + 40
    assert s.total_params == 224 + 5_130 + 40 and s.trainable_params == s.total_params - 216
    assert s.output_shape == (1, 4)


def test_meta_and_cpu_count_the_same_and_modes_are_restored() -> None:
    cpu = get_model("resnet18").train()
    a = summarize(cpu, (3, 64, 64))
    b = summarize(meta_model("resnet18"), (3, 64, 64))
    assert cpu.training
    assert a.to_dict() == b.to_dict()
    fc = 512 * 1000  # the classifier does not depend on the input size; every conv map does
    assert a.macs == (1_814_073_344 - fc) * 64 * 64 // (224 * 224) + fc


def test_depth_selects_rows_that_add_up_to_the_totals() -> None:
    model = meta_model("resnet18")
    top = summarize(model, (3, 224, 224), depth=2)
    assert [r.name for r in top.rows] == [
        "body.conv1", "body.bn1", "body.relu", "body.maxpool", "body.layer1", "body.layer2",
        "body.layer3", "body.layer4", "body.avgpool", "body.fc"]
    assert top.rows[4].output_shape == (1, 64, 56, 56) and top.rows[7].output_shape == (1, 512, 7, 7)
    relu = top.rows[2]
    assert relu.calls == 1 and relu.macs == 0  # activations count 0 MACs
    leaves = summarize(model, (3, 224, 224))
    types = [r.type for r in leaves.rows]
    # 17 3x3/7x7 convs + 3 downsample 1x1 convs, as many BNs, one ReLU a block (called twice)
    assert (types.count("Conv2d"), types.count("BatchNorm2d"), types.count("ReLU")) == (20, 20, 9)
    assert len(types) == 52 and sum(r.calls for r in leaves.rows if r.type == "ReLU") == 17
    for s in (top, leaves):
        assert sum(r.params for r in s.rows) == s.total_params
        assert sum(r.flops for r in s.rows) == s.flops


def test_modules_that_never_ran_keep_their_params() -> None:
    # GoogLeNet's two auxiliary heads only run in training mode; summaries run in eval mode
    s = summarize(meta_model("googlenet"), (3, 224, 224), depth=2)
    idle = [r for r in s.rows if r.output_shape is None]
    assert [r.name for r in idle] == ["body.aux1", "body.aux2"]
    assert all(r.calls == 0 and r.macs == 0 and r.params > 0 for r in idle)
    assert sum(r.params for r in s.rows) == s.total_params == 13_004_888


def test_renderers_carry_the_same_numbers() -> None:
    s = summarize(get_model("lenet5"), (1, 32, 32), name="lenet5")
    data = json.loads(s.to_json())
    assert data["total_params"] == 60_850 and data["macs"] == s.macs and data["flops"] == 2 * s.macs
    assert data["rows"][0] == {"name": "C1", "type": "Conv2d", "depth": 1,
                               "output_shape": [1, 6, 28, 28], "params": 156, "trainable": 156,
                               "flops": 235_200, "macs": 117_600, "calls": 1}
    md = s.to_markdown().splitlines()
    assert md[2] == "| Layer | Type | Output shape | Params | Trainable | MACs | FLOPs |"
    assert "| C1 | Conv2d | [1, 6, 28, 28] | 156 | 156 | 117.60K | 235.20K |" in md
    console = Console(record=True, width=160)
    console.print(s.to_rich_table())
    text = console.export_text()
    assert "lenet5 @ [1, 1, 32, 32]" in text and "Total params: 60,850" in text
    assert f"MACs: {format_count(s.macs)} ({s.macs:,})" in text


def test_format_count() -> None:
    assert [format_count(n) for n in (0, 156, 61_706, 1_814_073_344, 2.5e12)] == [
        "-", "156", "61.71K", "1.81G", "2.50T"]


@pytest.mark.parametrize("size", [(3, 224), (3, 224, 0), [3.0, 224, 224], "3x224x224"])
def test_bad_input_size_says_what_was_expected(size: object) -> None:
    with pytest.raises(ValueError, match=r"input_size must be \(C, H, W\), three positive ints"):
        summarize(meta_model("resnet18"), size)


def test_bad_model_depth_and_too_small_input() -> None:
    with pytest.raises(TypeError, match="model must be an nn.Module, got str"):
        summarize("resnet18", (3, 224, 224))
    with pytest.raises(ValueError, match="depth must be None .* got 0"):
        summarize(meta_model("resnet18"), (3, 224, 224), depth=0)
    with pytest.raises(ValueError, match=r"LeNet5 failed on an input of shape \(1, 1, 8, 8\)"):
        summarize(get_model("lenet5"), (1, 8, 8))
