"""The training primitives as the detector trainer uses them (classify.base): no decay on norm and
bias parameters, LR values at given iterations, the EMA formula, freezing by prefix."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from classify.base.ema import ModelEMA
from classify.base.optim import build_optimizer, freeze_by_prefix, param_groups
from classify.base.schedule import LRSchedule, build_scheduler, milestone_iterations


def toy() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 2), nn.LayerNorm(2))


def group_names(model: nn.Module, groups: list[dict]) -> dict[str, set[str]]:
    name_of = {id(p): n for n, p in model.named_parameters()}
    return {g["name"]: {name_of[id(p)] for p in g["params"]} for g in groups}


# ----------------------------------------------------------------------------- parameter groups


def test_norm_and_bias_parameters_get_no_weight_decay() -> None:
    model = toy()
    groups = param_groups(model, weight_decay=1e-4)
    assert group_names(model, groups) == {"decay": {"0.weight", "5.weight"},
                                          "no_decay": {"0.bias", "1.weight", "1.bias", "5.bias", "6.weight", "6.bias"}}
    assert [g["weight_decay"] for g in groups] == [1e-4, 0.0]


def test_decay_norm_and_bias_puts_everything_in_one_group() -> None:
    model = toy()
    groups = param_groups(model, weight_decay=0.5, decay_all=True)
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.5
    assert len(groups[0]["params"]) == len(list(model.parameters()))


def test_torchvision_detector_groups_batchnorm_without_decay() -> None:
    from detect.models.registry import get_detector

    model = get_detector("tv_fasterrcnn_mobilenet_v3_large_320_fpn", num_classes=3, image_size=64)
    names = group_names(model, param_groups(model, 1e-4))
    bn = {f"{m}.{p}" for m, mod in model.named_modules() if isinstance(mod, nn.BatchNorm2d) for p in ("weight", "bias")}
    assert bn and bn <= names["no_decay"]
    params = dict(model.named_parameters())
    assert all(params[n].ndim > 1 for n in names["decay"])
    assert all(n.endswith("bias") or n in bn for n in names["no_decay"])
    assert names["decay"] | names["no_decay"] == set(params)


def test_optimizers_carry_the_settings() -> None:
    model = toy()
    sgd = build_optimizer(param_groups(model, 1e-3), "sgd", lr=0.1, momentum=0.8)
    assert [g["momentum"] for g in sgd.param_groups] == [0.8, 0.8]
    assert [g["weight_decay"] for g in sgd.param_groups] == [1e-3, 0.0]
    adamw = build_optimizer(param_groups(model, 0.05), "adamw", lr=1e-3, momentum=0.85, beta2=0.99)
    assert isinstance(adamw, torch.optim.AdamW) and adamw.param_groups[0]["betas"] == (0.85, 0.99)
    assert [g["weight_decay"] for g in adamw.param_groups] == [0.05, 0.0]
    with pytest.raises(ValueError, match="expected one of sgd, adam, adamw, rmsprop, got 'lamb'"):
        build_optimizer(param_groups(model, 0.0), "lamb", lr=1e-3)


# ----------------------------------------------------------------------------- freezing


def test_freeze_by_prefix_removes_parameters_from_the_groups_and_keeps_bn_statistics() -> None:
    model = toy()
    frozen = freeze_by_prefix(model, ["0.", "1."])
    assert frozen == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert group_names(model, param_groups(model, 1e-4)) == {"decay": {"5.weight"},
                                                            "no_decay": {"5.bias", "6.weight", "6.bias"}}
    before = model[1].running_mean.clone()
    model.train()
    model(torch.rand(2, 3, 8, 8) * 5)
    assert torch.equal(model[1].running_mean, before)  # the frozen BN stays in eval mode


def test_freeze_unknown_prefix_is_an_error_with_suggestions() -> None:
    model = nn.Sequential()
    model.add_module("backbone", nn.Sequential(nn.Conv2d(3, 4, 1)))
    with pytest.raises(ValueError, match=r"prefix 'backbon\.0' matches no parameter.*did you mean 'backbone\.0'"):
        freeze_by_prefix(model, ["backbon.0"])


def test_freezing_everything_leaves_nothing_to_train() -> None:
    model = toy()
    freeze_by_prefix(model, ["0", "1", "5", "6"])
    with pytest.raises(ValueError, match="no trainable parameters"):
        param_groups(model, 1e-4)


# ----------------------------------------------------------------------------- LR schedule


def test_step_schedule_with_warmup_matches_hand_computed_values() -> None:
    s = LRSchedule(total_iters=100, warmup_iters=10, warmup_factor=0.001, kind="step", milestones=(50, 80), gamma=0.1)
    expected = {0: 0.001, 5: 0.001 * 0.5 + 0.5, 9: 0.001 * 0.1 + 0.9, 10: 1.0, 49: 1.0, 50: 0.1, 79: 0.1,
                80: 0.01, 99: 0.01}
    for it, value in expected.items():
        assert s(it) == pytest.approx(value, rel=1e-12), it


def test_cosine_schedule_matches_hand_computed_values() -> None:
    s = LRSchedule(total_iters=100, warmup_iters=10, warmup_factor=0.001, kind="cosine")
    assert s(0) == pytest.approx(0.001 * 0.5 * (1 + math.cos(0.0)))
    assert s(5) == pytest.approx(0.5005 * 0.99384417, rel=1e-7)  # 0.5 * (1 + cos(0.05 pi)) = 0.99384417
    assert s(50) == pytest.approx(0.5)
    assert s(75) == pytest.approx(0.14644661, rel=1e-7)  # 0.5 * (1 + cos(0.75 pi))
    assert s(100) == pytest.approx(0.0, abs=1e-15)
    floor = LRSchedule(total_iters=100, kind="cosine", min_ratio=0.1)
    assert floor(50) == pytest.approx(0.55) and floor(100) == pytest.approx(0.1)


def test_constant_schedule_and_milestone_fractions() -> None:
    s = LRSchedule(total_iters=10, warmup_iters=4, warmup_factor=0.2, kind="constant")
    assert [s(i) for i in range(6)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0])
    assert milestone_iterations((0.67, 0.89), 300) == (201, 267)
    with pytest.raises(ValueError, match="expected total_iters >= 1 and warmup_iters >= 0, got 0"):
        LRSchedule(total_iters=0)


def test_lambda_scheduler_sets_the_lr_of_each_iteration() -> None:
    model = toy()
    optimizer = build_optimizer(param_groups(model, 1e-4), "sgd", lr=0.02)
    schedule = LRSchedule(total_iters=20, warmup_iters=4, warmup_factor=0.001, kind="step", milestones=(10,))
    scheduler = build_scheduler(optimizer, schedule)
    seen = []
    for _ in range(12):
        seen.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    for it, lrs in enumerate(seen):
        assert lrs == pytest.approx([0.02 * schedule(it)] * 2), it
    assert seen[0][0] == pytest.approx(2e-5) and seen[11][0] == pytest.approx(0.002)


# ----------------------------------------------------------------------------- EMA


def test_ema_update_follows_the_formula_and_copies_buffers() -> None:
    model = toy()
    ema = ModelEMA(model, decay=0.9)
    old = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    model.train()
    model(torch.rand(2, 3, 8, 8))  # changes the BN running statistics
    ema.update(model)
    new = model.state_dict()
    for name, _ in model.named_parameters():
        assert torch.allclose(ema.module.state_dict()[name], 0.9 * old[name] + 0.1 * new[name], atol=1e-7), name
    for name, _ in model.named_buffers():
        assert torch.equal(ema.module.state_dict()[name], new[name]), name
    assert ema.updates == 1 and not ema.module.training
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_ema_warmup_decay_and_state_round_trip() -> None:
    model = toy()
    ema = ModelEMA(model, decay=0.9, tau=5.0)
    assert ema.decay_at(1) == pytest.approx(0.9 * (1 - math.exp(-1 / 5)))  # 0.16314...
    assert ema.decay_at(1) == pytest.approx(0.16314232, rel=1e-7)
    before = next(ema.module.parameters()).clone()
    with torch.no_grad():
        next(model.parameters()).fill_(1.0)
    ema.update(model)
    d = 0.9 * (1 - math.exp(-1 / 5))
    assert torch.allclose(next(ema.module.parameters()), d * before + (1 - d) * 1.0, atol=1e-7)
    other = ModelEMA(toy(), decay=0.9, tau=5.0)
    other.load_state_dict(ema.state_dict())
    assert other.updates == 1 and torch.equal(next(other.module.parameters()), next(ema.module.parameters()))
    with pytest.raises(ValueError, match=r"EMA decay: expected a value in \(0, 1\), got 1.0"):
        ModelEMA(model, decay=1.0)
