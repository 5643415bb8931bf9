"""``classify.inspect.viz``: first-layer filter grids, feature maps, image preparation, model loading."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from classify import get_model
from classify.base.checkpoint import save_checkpoint
from classify.inspect.viz import (
    feature_maps,
    filter_grid,
    first_layer_filters,
    load_model,
    prepare_image,
    save_feature_maps,
    save_filter_grid,
)


@pytest.fixture(scope="module")
def resnet18() -> torch.nn.Module:
    torch.manual_seed(0)
    return get_model("resnet18")


def test_first_layer_filters_are_the_stem_weights(resnet18: torch.nn.Module) -> None:
    w = first_layer_filters(resnet18)
    assert w.shape == (64, 3, 7, 7)
    assert torch.equal(w, resnet18.body.conv1.weight.detach())
    assert first_layer_filters(get_model("lenet5")).shape == (6, 1, 5, 5)
    plain = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Conv2d(2, 4, 3))  # no stem_conv_path
    assert first_layer_filters(plain).shape == (4, 2, 3, 3)
    with pytest.raises(ValueError, match="Sequential has no nn.Conv2d layer"):
        first_layer_filters(torch.nn.Sequential(torch.nn.Linear(2, 2)))


def test_filter_grid_normalises_each_filter() -> None:
    weights = torch.randn(5, 3, 4, 4) * torch.tensor([1e-3, 1, 10, 100, 1e4])[:, None, None, None]
    grid = filter_grid(weights, padding=1)
    assert grid.shape == (3, 2 * 5 + 1, 3 * 5 + 1)  # ceil(sqrt(5)) = 3 a row, 2 rows; 4 px + 1 pad
    for i in range(5):  # cell i spans rows/cols 1 + 5 * (row, col)
        r, c = divmod(i, 3)
        cell = grid[:, 1 + 5 * r:5 + 5 * r, 1 + 5 * c:5 + 5 * c]
        assert float(cell.min()) == 0.0 and float(cell.max()) == pytest.approx(1.0)
        expected = (weights[i] - weights[i].min()) / (weights[i].max() - weights[i].min())
        torch.testing.assert_close(cell, expected)
    gray = filter_grid(torch.randn(4, 1, 5, 5))
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    with pytest.raises(ValueError, match=r"expected conv weights Tensor\[N, C, kh, kw\], got \(3, 3\)"):
        filter_grid(torch.zeros(3, 3))


def test_feature_maps_of_a_stage(resnet18: torch.nn.Module) -> None:
    x = torch.randn(3, 64, 64)
    maps = feature_maps(resnet18, x, "layer1")
    assert maps.shape == (64, 16, 16)
    resnet18.eval()
    with torch.no_grad():
        torch.testing.assert_close(maps, resnet18.features(x[None])["layer1"][0])
    assert feature_maps(resnet18, x[None]).shape == (64, 32, 32)  # default: "stem", stride 2
    with pytest.raises(ValueError, match="unknown stage 'layer5' for ResNet; did you mean 'layer4'.*stages: stem, layer1"):
        feature_maps(resnet18, x, "layer5")
    with pytest.raises(ValueError, match="reads 3-channel images, got 1 channels"):
        feature_maps(resnet18, torch.randn(1, 64, 64), "layer1")
    with pytest.raises(ValueError, match=r"expected one image .* got \(2, 3, 64, 64\)"):
        feature_maps(resnet18, torch.randn(2, 3, 64, 64), "layer1")
    with pytest.raises(TypeError, match="expected a zoo Backbone"):
        feature_maps(torch.nn.Conv2d(3, 3, 3), x, "layer1")


def test_pngs_are_written(resnet18: torch.nn.Module, tmp_path: Path) -> None:
    filters = save_filter_grid(resnet18, tmp_path / "a" / "filters.png")
    maps = save_feature_maps(resnet18, torch.randn(3, 64, 64), "layer2", tmp_path / "maps.png",
                             channels=5, display=torch.rand(3, 64, 64))
    for png in (filters, maps):
        pixels = cv2.imread(str(png))
        assert pixels is not None and pixels.std() > 0
    with pytest.raises(ValueError, match="channels must be an int >= 1, got 0"):
        save_feature_maps(resnet18, torch.randn(3, 64, 64), "layer2", tmp_path / "x.png", channels=0)


def test_prepare_image_resizes_the_short_side_crops_the_centre_and_keeps_rgb(tmp_path: Path) -> None:
    bgr = np.zeros((40, 80, 3), np.uint8)
    bgr[:, :20] = (255, 0, 0)    # blue, cropped away
    bgr[:, 20:60] = (0, 0, 255)  # red, the centre square
    bgr[:, 60:] = (0, 255, 0)    # green, cropped away
    cv2.imwrite(str(tmp_path / "flag.png"), bgr)
    x, shown = prepare_image(tmp_path / "flag.png", 20, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert shown.shape == x.shape == (3, 20, 20)
    assert torch.equal(shown, torch.tensor([1.0, 0, 0])[:, None, None].expand(3, 20, 20))
    torch.testing.assert_close(x, (shown - 0.5) / 0.25)
    gray, shown_gray = prepare_image(tmp_path / "flag.png", 20, (0.0,), (1.0,), in_chans=1)
    assert gray.shape == (1, 20, 20)
    assert float(shown_gray.mean()) == pytest.approx(76 / 255, abs=1e-6)  # OpenCV's gray of red
    with pytest.raises(FileNotFoundError, match="image not found"):
        prepare_image(tmp_path / "none.png", 20, (0.5,) * 3, (0.5,) * 3)
    with pytest.raises(ValueError, match="mean/std need 3 values"):
        prepare_image(tmp_path / "flag.png", 20, (0.5,), (0.5,))


def test_load_model_from_name_and_from_checkpoint(tmp_path: Path) -> None:
    model, name = load_model("lenet5")
    assert name == "lenet5" and model.num_classes == 10
    trained = get_model("lenet5_relu", num_classes=3)
    ckpt = save_checkpoint(tmp_path / "run" / "best.pt", trained.state_dict(),
                           config={"model": "lenet5_relu", "num_classes": 3},
                           class_names=["a", "b", "c"])
    loaded, name = load_model(ckpt)
    assert name == "lenet5_relu" and loaded.num_classes == 3 and loaded.in_chans == 1
    for key, value in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    # a nested model section, class count taken from the class names
    nested = save_checkpoint(tmp_path / "nested.pt", trained.state_dict(),
                             config={"model": {"name": "lenet5_relu"}}, class_names=["a", "b", "c"])
    assert load_model(nested)[0].num_classes == 3


def test_load_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown model 'lenet6'; did you mean 'lenet5'"):
        load_model("lenet6")
    with pytest.raises(FileNotFoundError, match="checkpoint not found: runs/none.pt"):
        load_model("runs/none.pt")
    bad = save_checkpoint(tmp_path / "bad.pt", get_model("lenet5").state_dict(), config={"lr": 0.1})
    with pytest.raises(ValueError, match="checkpoint config needs 'model'"):
        load_model(bad)
    with pytest.raises(ValueError, match="--weights is for registry names"):
        load_model(bad, weights="imagenet")


@pytest.mark.slow
def test_imagenet_efficientnet_lite0_filters_and_maps(tmp_path: Path) -> None:
    from classify.inspect.filters import default_image
    from classify.models.registry import get_model_entry

    model, _ = load_model("efficientnet_lite0", weights="imagenet")
    w = first_layer_filters(model)
    assert w.shape == (32, 3, 3, 3)
    # trained filters are not the fresh init: their norms spread over orders of magnitude
    norms = w.flatten(1).norm(dim=1)
    assert float(norms.max() / norms.min()) > 10
    entry = get_model_entry("efficientnet_lite0")
    x, shown = prepare_image(default_image(), 224, entry.mean, entry.std)
    maps = feature_maps(model, x, "blocks.2")
    assert maps.shape == (24, 56, 56)
    save_filter_grid(model, tmp_path / "f.png")
    save_feature_maps(model, x, "blocks.2", tmp_path / "m.png", display=shown)
    assert (tmp_path / "f.png").stat().st_size > 1000 and (tmp_path / "m.png").stat().st_size > 1000
