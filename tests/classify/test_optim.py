"""Parameter groups, optimisers and learning-rate schedules (classify.base, shared with the detector
trainer) as the classifier uses them; freezing the backbone, dropout and BN momentum."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from classify.base.optim import build_optimizer, param_groups
from classify.base.schedule import LRSchedule, build_scheduler
from classify.engine.tuning import freeze_backbone, head_parameters, set_bn_momentum, set_drop_rate, set_train_mode
from classify.models.registry import get_model


def _meta(name: str, **kw: object) -> nn.Module:
    with torch.device("meta"):
        return get_model(name, **kw)


def test_param_groups_split_head_backbone_and_decay() -> None:
    model = _meta("resnet18", num_classes=10)
    groups = param_groups(model, weight_decay=1e-4, head=head_parameters(model), backbone_lr_scale=0.1)
    assert [g["name"] for g in groups] == ["head/decay", "head/no_decay", "backbone/decay", "backbone/no_decay"]
    by_key = {(g["lr_scale"], g["weight_decay"]): g["params"] for g in groups}
    assert set(by_key) == {(1.0, 1e-4), (1.0, 0.0), (0.1, 1e-4), (0.1, 0.0)}
    assert [p.shape for p in by_key[1.0, 1e-4]] == [(10, 512)]
    assert [p.shape for p in by_key[1.0, 0.0]] == [(10,)]
    no_decay = by_key[0.1, 0.0]
    assert all(p.dim() == 1 for p in no_decay)
    assert sum(p.numel() for p in no_decay) == 2 * 4800  # BN weight + bias of 4,800 channels
    assert all(p.dim() == 4 for p in by_key[0.1, 1e-4])  # only conv kernels decay
    total = sum(p.numel() for g in groups for p in g["params"])
    assert total == sum(p.numel() for p in model.parameters())


def test_build_optimizer_scales_lr_and_knows_four_optimisers() -> None:
    model = get_model("lenet5_relu")
    groups = param_groups(model, 5e-4, head=head_parameters(model), backbone_lr_scale=0.25)
    sgd = build_optimizer(groups, "sgd", lr=0.2, momentum=0.9, nesterov=True)
    assert sorted(g["lr"] for g in sgd.param_groups) == [0.05, 0.05, 0.2, 0.2]
    assert sgd.defaults["nesterov"] is True
    assert isinstance(build_optimizer(groups, "adam", 1e-3), torch.optim.Adam)
    adamw = build_optimizer(groups, "adamw", 1e-3, momentum=0.8)
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["betas"] == (0.8, 0.999)
    assert isinstance(build_optimizer(groups, "rmsprop", 1e-3), torch.optim.RMSprop)
    with pytest.raises(ValueError, match="expected one of sgd, adam, adamw, rmsprop, got 'lion'"):
        build_optimizer(groups, "lion", 1e-3)


def test_freeze_backbone_trains_only_the_head() -> None:
    torch.manual_seed(0)
    model = get_model("resnet18", num_classes=3, in_chans=1)
    assert freeze_backbone(model) == 512 * 3 + 3
    set_train_mode(model, frozen_backbone=True)
    assert not model.body.bn1.training and model.body.fc.training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = build_optimizer(param_groups(model, 1e-4), "sgd", lr=0.5)
    loss = nn.functional.cross_entropy(model(torch.randn(4, 1, 32, 32)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    optimizer.step()
    after = model.state_dict()
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed == ["body.fc.bias", "body.fc.weight"]  # BN running statistics unchanged too
    set_train_mode(model, frozen_backbone=False)
    assert model.body.bn1.training


def test_frozen_backbone_keeps_head_dropout_active() -> None:
    model = _meta("mobilenet_v2", num_classes=5)
    freeze_backbone(model)
    set_train_mode(model, frozen_backbone=True)
    assert model.body.classifier[0].training and not model.body.features[0][1].training


def test_set_drop_rate() -> None:
    model = _meta("mobilenet_v2", num_classes=5)
    assert set_drop_rate(model, 0.35) == 1 and model.body.classifier[0].p == 0.35
    with pytest.raises(ValueError, match="LeNet5 has no dropout layer"):
        set_drop_rate(_meta("lenet5"), 0.2)


def test_set_bn_momentum() -> None:
    model = _meta("efficientnet_lite0", num_classes=5)
    assert {m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)} == {0.01}
    assert set_bn_momentum(model, 0.1) == 49
    assert {m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)} == {0.1}
    with pytest.raises(ValueError, match="LeNet5 has no batch-norm layer"):
        set_bn_momentum(_meta("lenet5"), 0.1)


def _curve(schedule: LRSchedule) -> list[float]:
    return [schedule(i) for i in range(schedule.total_iters)]


def test_warmup_then_step_and_cosine() -> None:
    step = _curve(LRSchedule(10, 4, 0.2, "step", milestones=(6,), gamma=0.5, warmup_prefix=True))
    assert step == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5])
    cosine = LRSchedule(12, 2, 0.5, "cosine", min_ratio=0.1, warmup_prefix=True)
    assert [cosine(0), cosine(1), cosine(2)] == pytest.approx([0.5, 0.75, 1.0])
    assert cosine(7) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2)))
    assert cosine(12) == pytest.approx(0.1)
    assert _curve(LRSchedule(3, kind="constant")) == [1.0, 1.0, 1.0]


def test_onecycle_matches_torch_onecyclelr() -> None:
    total = 50
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=0.4)
    reference = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.4, total_steps=total,
                                                    pct_start=0.3, cycle_momentum=False)
    expected = []
    for _ in range(total):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        reference.step()
    ours = [0.4 * f for f in _curve(LRSchedule(total, kind="onecycle"))]
    assert ours == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_scheduler_steps_every_group_and_state_round_trips() -> None:
    model = get_model("lenet5_relu")
    groups = param_groups(model, 0.0, head=head_parameters(model), backbone_lr_scale=0.5)
    opt = build_optimizer(groups, "sgd", lr=1.0)
    sched = build_scheduler(opt, LRSchedule(4, kind="step", milestones=(2,), gamma=0.1))
    for _ in range(2):
        opt.step()
        sched.step()
    assert sorted(g["lr"] for g in opt.param_groups) == pytest.approx([0.05, 0.05, 0.1, 0.1])
    state = sched.state_dict()
    assert state["last_epoch"] == 2 and state["lr_lambdas"][0]["kind"] == "step"


def test_schedule_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="got 'linear'"):
        LRSchedule(3, kind="linear")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected total_iters >= 1"):
        LRSchedule(0, kind="cosine")


def test_the_two_warmup_conventions() -> None:
    """timm's (warm-up first, then the whole cosine) and detectron2's (warm-up factor times a
    cosine over the whole run) differ during and after the warm-up, as their sources define."""
    prefix = LRSchedule(100, 10, 0.1, "cosine", warmup_prefix=True)
    spanning = LRSchedule(100, 10, 0.1, "cosine")
    assert prefix(5) == 0.1 + 0.9 * 5 / 10 and prefix(10) == 1.0
    assert prefix(55) == pytest.approx(0.5)  # halfway through the 90 cosine iterations
    assert spanning(5) == pytest.approx(0.55 * 0.5 * (1 + math.cos(math.pi * 0.05)))
    assert spanning(50) == pytest.approx(0.5)
