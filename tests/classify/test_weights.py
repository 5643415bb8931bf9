"""Loading local weights: torchvision and own layouts, checkpoints, head/stem rules, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

import classify
from classify.models.weights import adapt_stem_weight, load_weights, read_state_dict

#: (name, input size, torchvision builder options) for one model of every wrapped family
PARITY = [
    ("alexnet", 63, {}),
    pytest.param("vgg11_bn", 32, {}, marks=pytest.mark.slow),
    ("googlenet", 32, {"init_weights": True, "aux_logits": True}),
    ("inception_v3", 75, {"init_weights": True, "aux_logits": True}),
    ("resnet18", 32, {}),
    ("resnext50_32x4d", 32, {}),
    ("densenet121", 32, {}),
    ("mobilenet_v2", 32, {}),
    ("mobilenet_v3_small", 32, {}),
    ("mobilenet_v3_large", 32, {}),
    ("shufflenet_v2_x1_0", 32, {}),
    ("efficientnet_b0", 32, {}),
    ("convnext_tiny", 32, {}),
]


def torchvision_model(name: str, **kwargs) -> torch.nn.Module:
    """A torchvision model with random weights and random BatchNorm statistics."""
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None, **kwargs)
    for key, value in model.state_dict().items():
        if key.endswith("running_mean"):
            value.normal_(0.0, 0.1)
        elif key.endswith("running_var"):
            value.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize(("name", "size", "options"), PARITY)
def test_torchvision_state_dict_gives_torchvision_outputs(name: str, size: int, options: dict):
    reference = torchvision_model(name, **options)
    model = classify.get_model(name)
    report = load_weights(model, reference.state_dict())
    assert report.skipped_keys == () and report.adapted_keys == ()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), reference(x), rtol=1e-4, atol=1e-5)


def test_resnet_features_equal_torchvision_intermediate_layers():
    from torchvision.models._utils import IntermediateLayerGetter

    reference = torchvision_model("resnet50")
    model = classify.get_model("resnet50")
    load_weights(model, reference.state_dict())
    layers = {f"layer{i}": f"layer{i}" for i in range(1, 5)}
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = IntermediateLayerGetter(reference, layers)(x)
        feats = model.eval().features(x)
    for key, value in expected.items():
        torch.testing.assert_close(feats[key], value)


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory) -> Path:
    """A torchvision-layout resnet18 checkpoint nested like a training checkpoint."""
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save({"state_dict": torchvision_model("resnet18").state_dict(), "epoch": 3}, path)
    return path


def test_get_model_loads_torchvision_checkpoint_file(resnet18_file: Path):
    reference = torchvision_model("resnet18")
    model = classify.get_model("resnet18", weights=resnet18_file).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x))


@pytest.mark.parametrize("name", ["lenet5", "lenet5_relu", "mobilenet_v1", "efficientnet_lite0",
                                  "googlenet", "resnet18"])
@pytest.mark.parametrize("nesting", ["plain", "model", "module"])
def test_saved_state_dict_round_trips(name: str, nesting: str, tmp_path: Path):
    torch.manual_seed(0)
    model = classify.get_model(name).eval()
    state = model.state_dict()
    obj = {"plain": state, "model": {"model": state, "optimizer": {}},
           "module": {"module." + k: v for k, v in state.items()}}[nesting]
    torch.save(obj, tmp_path / "w.pth")
    torch.manual_seed(1)
    loaded = classify.get_model(name, weights=tmp_path / "w.pth").eval()
    size = classify.get_model_entry(name).min_input_size
    x = torch.randn(2, model.in_chans, size, size)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def _resnet18_state() -> dict[str, torch.Tensor]:
    return torchvision_model("resnet18").state_dict()


def test_wrong_key_is_named():
    state = _resnet18_state()
    state["fc.weights"] = state.pop("fc.weight")
    with pytest.raises(ValueError) as err:
        load_weights(classify.get_model("resnet18"), state)
    message = str(err.value)
    assert "1 missing keys (body.fc.weight)" in message
    assert "1 unexpected keys (body.fc.weights)" in message


def test_wrong_key_from_file_names_the_file(tmp_path: Path):
    state = classify.get_model("lenet5").state_dict()
    state["C9.weight"] = state["C1.weight"]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"bad\.pth: .*1 unexpected keys \(C9\.weight\)"):
        classify.get_model("lenet5", weights=tmp_path / "bad.pth")


def test_shape_mismatch_is_named():
    state = _resnet18_state()
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 5, 5)
    with pytest.raises(ValueError, match=r"1 shape mismatches \(body\.layer1\.0\.conv1\.weight: "
                                         r"file \[64, 64, 5, 5\] vs model \[64, 64, 3, 3\]"):
        load_weights(classify.get_model("resnet18"), state)


def test_many_missing_keys_are_counted_and_nothing_is_loaded():
    model = classify.get_model("resnet18")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = {k: torch.zeros_like(v) for k, v in _resnet18_state().items()
             if not k.startswith("layer4")}
    with pytest.raises(ValueError, match=r"missing keys \(body\.layer4\..*, \.\.\. \d+ more\)"):
        load_weights(model, state)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_missing_num_batches_tracked_is_accepted():
    state = {k: v for k, v in _resnet18_state().items() if "num_batches_tracked" not in k}
    load_weights(classify.get_model("resnet18"), state)


def test_other_num_classes_loads_all_but_the_head(resnet18_file: Path):
    reference = read_state_dict(resnet18_file)
    model = classify.get_model("resnet18", num_classes=10, weights=resnet18_file)
    own = model.state_dict()
    assert own["body.fc.weight"].shape == (10, 512)
    for key, value in reference.items():
        if not key.startswith("fc."):
            assert torch.equal(own["body." + key], value), key


def test_head_skip_is_reported_and_covers_aux_heads():
    reference = torchvision_model("googlenet", init_weights=True, aux_logits=True)
    model = classify.get_model("googlenet", num_classes=10)
    report = load_weights(model, reference.state_dict())
    assert set(report.skipped_keys) == {f"body.{h}.{p}" for h in ("fc", "aux1.fc2", "aux2.fc2")
                                        for p in ("weight", "bias")}
    assert torch.equal(model.body.aux1.fc1.weight, reference.aux1.fc1.weight)


def test_headless_model_loads_backbone(resnet18_file: Path):
    model = classify.get_model("resnet18", num_classes=0, weights=resnet18_file).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 512)


def test_grey_model_from_rgb_weights_sees_grey_images_like_the_rgb_model(resnet18_file: Path):
    rgb = classify.get_model("resnet18", weights=resnet18_file).eval()
    grey = classify.get_model("resnet18", in_chans=1, weights=resnet18_file).eval()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(grey(x), rgb(x.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-5)


def test_six_channel_stem_is_tiled_and_rescaled(resnet18_file: Path):
    rgb = classify.get_model("resnet18", weights=resnet18_file).eval()
    six = classify.get_model("resnet18", in_chans=6, weights=resnet18_file).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(six(torch.cat([x, x], 1)), rgb(x), rtol=1e-4, atol=1e-5)


def test_adapt_stem_weight_values():
    w = torch.arange(6.0).reshape(1, 3, 1, 2)
    assert adapt_stem_weight(w, 1).flatten().tolist() == [6.0, 9.0]
    assert adapt_stem_weight(w, 4).shape == (1, 4, 1, 2)
    torch.testing.assert_close(adapt_stem_weight(w, 4)[:, 3], w[:, 0] * 0.75)


def test_unknown_weights_argument_lists_tags():
    with pytest.raises(ValueError, match=r"neither an existing file .* \(tags: none\)"):
        classify.get_model("resnet18", weights="imagenet")
    with pytest.raises(ValueError, match=r"tags: 'imagenet'"):
        classify.get_model("efficientnet_lite0", weights="no/such/file.pth")
    with pytest.raises(TypeError, match="weights must be None, a tag or a path"):
        classify.get_model("lenet5", weights=3)


def test_unreadable_and_odd_files(tmp_path: Path):
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a readable weights file"):
        read_state_dict(tmp_path / "text.pth")
    torch.save({"epoch": 3, "optimizer": {}}, tmp_path / "meta.pth")
    with pytest.raises(ValueError, match=r"expected a state dict or a checkpoint .* found keys "
                                         r"epoch, optimizer"):
        read_state_dict(tmp_path / "meta.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(TypeError, match="expected a state dict, got list"):
        read_state_dict(tmp_path / "list.pth")
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        read_state_dict(tmp_path / "missing.pth")


@pytest.mark.parametrize(("name", "size"), [("googlenet", 32), ("inception_v3", 75)])
def test_aux_weights_are_ignored_by_a_model_without_aux_heads(name: str, size: int):
    reference = torchvision_model(name, init_weights=True, aux_logits=True)
    model = classify.get_model(name, aux_logits=False)
    load_weights(model, reference.state_dict())
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), reference(x), rtol=1e-4, atol=1e-5)
