"""Registry, package surface and the feature-info checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import classify
from classify.models.features import FeatureInfo, check_feature_info, replace_conv_in_chans
from classify.models.registry import _REGISTRY, register_model

ROOT = Path(__file__).resolve().parents[2]


def test_zoo_is_complete():
    expected = {
        "lenet5", "lenet5_relu", "alexnet", "zfnet", "googlenet", "inception_v3",
        *(f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")),
        *(f"resnet{d}" for d in (18, 34, 50, 101, 152)), "resnext50_32x4d",
        "densenet121", "densenet169", "densenet201", "mobilenet_v1", "mobilenet_v2",
        "mobilenet_v3_large", "mobilenet_v3_small", "shufflenet_v2_x1_0", "efficientnet_b0",
        "efficientnet_lite0", "convnext_tiny",
    }
    assert set(classify.list_models()) == expected
    assert classify.list_models("resnet") == ["resnet18", "resnet34", "resnet50", "resnet101",
                                              "resnet152"]


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ValueError, match=r"unknown model 'resnet19'; did you mean 'resnet18'"):
        classify.get_model("resnet19")
    with pytest.raises(ValueError, match=r"'mobilenet_v3_large'"):
        classify.get_model("mobilenetv3_large")
    with pytest.raises(ValueError, match=r"unknown model 'xyzzy' \(classify.list_models\(\)"):
        classify.get_model("xyzzy")
    with pytest.raises(TypeError, match="model name must be a str"):
        classify.get_model(18)


@pytest.mark.parametrize(("option", "value"), [("num_classes", -1), ("num_classes", 1.5),
                                               ("in_chans", 0), ("in_chans", True)])
def test_bad_sizes_are_rejected(option: str, value):
    with pytest.raises(ValueError, match=rf"get_model\('resnet18'\): {option} must be an int"):
        classify.get_model("resnet18", **{option: value})


def test_native_defaults_and_entry_metadata():
    lenet = classify.get_model("lenet5")
    assert (lenet.num_classes, lenet.in_chans) == (10, 1)
    resnet = classify.get_model("resnet18")
    assert (resnet.num_classes, resnet.in_chans) == (1000, 3)
    assert classify.get_model_entry("inception_v3").input_size == 299
    assert classify.get_model_entry("efficientnet_lite0").mean == (0.5, 0.5, 0.5)
    assert list(classify.get_model_entry("efficientnet_lite0").weights) == ["imagenet"]


def test_builder_options_pass_through():
    model = classify.get_model("resnet18", zero_init_residual=True)
    assert torch.count_nonzero(model.body.layer1[0].bn2.weight) == 0
    with pytest.raises(TypeError):
        classify.get_model("mobilenet_v1", no_such_option=1)


def test_register_model_adds_and_refuses_duplicates():
    def tiny(num_classes: int = 2, in_chans: int = 3):
        return classify.get_model("lenet5", num_classes=num_classes, in_chans=in_chans)

    try:
        register_model("test_tiny", min_input_size=32, num_classes=2, in_chans=1)(tiny)
        assert "test_tiny" in classify.list_models()
        assert classify.get_model("test_tiny").num_classes == 2
        register_model("test_tiny", min_input_size=32)(tiny)  # same builder: idempotent
        with pytest.raises(ValueError, match="'test_tiny' is already registered"):
            register_model("test_tiny", min_input_size=32)(lambda **kw: None)
    finally:
        _REGISTRY.pop("test_tiny", None)


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True, env={"PYTHONPATH": str(ROOT)})
    return result.stdout.strip()


def test_import_is_lazy_and_never_pulls_detect():
    assert _run("import sys, classify; print('torch' in sys.modules)") == "False"
    code = ("import sys, classify; classify.get_model('lenet5'); classify.list_models(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'detect'))")
    assert _run(code) == "[]"


def test_no_source_file_imports_detect():
    for path in (ROOT / "classify").rglob("*.py"):
        text = path.read_text()
        assert "import detect" not in text and "from detect" not in text, path


def test_public_api_resolves():
    for name in classify.__all__:
        assert getattr(classify, name) is not None
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        classify.nope  # noqa: B018


def test_check_feature_info_rejects_bad_declarations():
    with pytest.raises(ValueError, match="strides must never decrease, got \\[8, 4\\]"):
        check_feature_info([FeatureInfo("a", 8, 8), FeatureInfo("b", 8, 4)], "M")
    with pytest.raises(ValueError, match="names must be unique"):
        check_feature_info([FeatureInfo("a", 8, 4), FeatureInfo("a", 8, 8)], "M")
    with pytest.raises(ValueError, match="empty"):
        check_feature_info([], "M")
    with pytest.raises(ValueError, match="positive channels and stride"):
        check_feature_info([FeatureInfo("a", 0, 4)], "M")
    with pytest.raises(Exception):
        FeatureInfo("a", 8, 4).stride = 2  # frozen


def test_replace_conv_in_chans_keeps_geometry():
    conv = nn.Conv2d(3, 16, 7, stride=2, padding=3, bias=False)
    new = replace_conv_in_chans(conv, 1)
    assert (new.in_channels, new.out_channels, new.kernel_size, new.stride, new.padding) == (
        1, 16, (7, 7), (2, 2), (3, 3))
    assert new.bias is None
    with pytest.raises(TypeError, match="stem must be an nn.Conv2d"):
        replace_conv_in_chans(nn.Linear(3, 3), 1)
    with pytest.raises(ValueError, match="grouped stem conv"):
        replace_conv_in_chans(nn.Conv2d(4, 4, 3, groups=2), 1)
