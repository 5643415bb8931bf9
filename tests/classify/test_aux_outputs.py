"""GoogLeNet and Inception v3 auxiliary classifiers in training mode."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import classify
from classify.models.outputs import AuxOutputs, classification_loss, main_logits


@pytest.fixture(scope="module")
def googlenet() -> classify.Backbone:
    torch.manual_seed(0)
    return classify.get_model("googlenet", num_classes=6)


def test_googlenet_training_returns_two_aux_logits_weighted_0_3(googlenet):
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 5])
    out = googlenet.train()(x)
    assert isinstance(out, AuxOutputs)
    assert out.logits.shape == (2, 6) and [a.shape for a in out.aux_logits] == [(2, 6)] * 2
    assert out.aux_weights == (0.3, 0.3)
    expected = (F.cross_entropy(out.logits, y) + 0.3 * F.cross_entropy(out.aux_logits[0], y)
                + 0.3 * F.cross_entropy(out.aux_logits[1], y))
    torch.testing.assert_close(classification_loss(out, y), expected)
    classification_loss(out, y).backward()
    assert googlenet.body.aux1.fc2.weight.grad is not None


def test_googlenet_eval_and_head_return_main_logits(googlenet):
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits = googlenet.eval()(x)
        assert isinstance(logits, torch.Tensor) and logits.shape == (2, 6)
        torch.testing.assert_close(googlenet.forward_head(googlenet.features(x)), logits)
    googlenet.train()
    assert isinstance(googlenet.forward_head(googlenet.features(x)), torch.Tensor)


def test_googlenet_without_aux_returns_a_tensor_in_training():
    model = classify.get_model("googlenet", num_classes=4, aux_logits=False).train()
    out = model(torch.randn(2, 3, 32, 32))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 4)
    assert model.classifier_paths == ("body.fc",)


def test_inception_v3_aux_needs_299_px_in_training_and_says_how_to_avoid_it():
    model = classify.get_model("inception_v3", num_classes=3).train()
    with pytest.raises(ValueError, match=r"Mixed_6e map of at least 17x17 .* aux_logits=False"):
        model(torch.randn(2, 3, 75, 75))
    small = classify.get_model("inception_v3", num_classes=3, aux_logits=False,
                               in_chans=1).train()
    out = small(torch.randn(2, 1, 75, 75))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3)


@pytest.mark.slow
def test_inception_v3_training_at_299_returns_aux_weighted_0_4():
    model = classify.get_model("inception_v3", num_classes=3).train()
    out = model(torch.randn(2, 3, 299, 299))
    assert isinstance(out, AuxOutputs)
    assert out.aux_weights == (0.4,) and out.aux_logits[0].shape == (2, 3)


@pytest.mark.parametrize("name", ["googlenet", "inception_v3"])
def test_transform_input_needs_rgb(name: str):
    with pytest.raises(ValueError, match="transform_input=True .* needs in_chans=3, got 1"):
        classify.get_model(name, in_chans=1, transform_input=True)


def test_plain_tensor_loss_and_main_logits():
    logits, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    torch.testing.assert_close(classification_loss(logits, y), F.cross_entropy(logits, y))
    assert main_logits(logits) is logits
    assert main_logits(AuxOutputs(logits, (), ())) is logits
