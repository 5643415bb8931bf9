"""train_one_epoch / evaluate / fit: metrics, outputs, checkpoints, exact resume."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from classify.base.checkpoint import load_checkpoint
from classify.base.optim import build_optimizer, param_groups
from classify.base.schedule import LRSchedule, build_scheduler
from classify.data.augment import BatchTransform
from classify.data.datasets import TensorImageDataset, load_data, make_loader
from classify.engine.config import TrainConfig
from classify.engine.metrics import ClassificationMeter
from classify.engine.run import DeviceSetup, build_model, config_from_checkpoint, resolve_config
from classify.engine.trainer import evaluate_checkpoint, fit, train_one_epoch
from classify.models.registry import get_model

#: about a second an epoch: LeNet-5 (ReLU) on 400 real MNIST digits, scored on 100
TINY = dict(data="mnist5k", model="lenet5_relu", subset=40, test_subset=10, epochs=2,
            batch_size=20, optimizer="adam", lr=3e-3, fit_mode="pad", crop_padding=0.0625,
            brightness=0.2, progress=False, name="run")


def _config(tmp_path: Path, **kw: object) -> TrainConfig:
    return TrainConfig(**{**TINY, "output": tmp_path, **kw})


def _quiet(_: str) -> None:
    pass


# ----------------------------------------------------------------------------- metrics


def test_meter_top1_top5_per_class_and_confusion() -> None:
    meter = ClassificationMeter(6)
    logits = torch.tensor([[9., 8, 7, 6, 5, 0],   # true 0 -> 0
                           [9., 8, 7, 6, 5, 0],   # true 1 -> 0 (top-5 hit)
                           [0., 1, 2, 3, 4, 9],   # true 0 -> 5 (top-5 miss)
                           [0., 9, 0, 0, 0, 0]])  # true 1 -> 1
    meter.update(logits, torch.tensor([0, 1, 0, 1]), loss_sum=2.0)
    result = meter.result()
    assert (result.top1, result.top5, result.loss, result.images) == (0.5, 0.75, 0.5, 4)
    expected = torch.zeros(6, 6, dtype=torch.int64)
    expected[0, 0] = expected[1, 0] = expected[0, 5] = expected[1, 1] = 1
    assert torch.equal(result.confusion, expected)
    assert result.per_class[:2] == (0.5, 0.5) and all(v != v for v in result.per_class[2:])
    with pytest.raises(ValueError, match=r"expected logits \[N, 6\]"):
        meter.update(torch.zeros(2, 5), torch.zeros(2, dtype=torch.int64))


def test_train_one_epoch_raises_on_a_non_finite_loss() -> None:
    model = get_model("lenet5_relu")
    with torch.no_grad():
        model.output.weight.fill_(float("nan"))
    data = TensorImageDataset(torch.zeros(8, 1, 28, 28, dtype=torch.uint8), [0] * 8, list("0123456789"))
    opt = build_optimizer(param_groups(model, 0.0), "sgd", 0.1)
    with pytest.raises(FloatingPointError, match="loss is nan at batch 0"):
        train_one_epoch(model, make_loader(data, 4, shuffle=False),
                        BatchTransform(32, 1, (0.5,), (0.5,), "pad"), opt,
                        build_scheduler(opt, LRSchedule(2, kind="constant")), DeviceSetup(torch.device("cpu")))


# ----------------------------------------------------------------------------- fit


def test_fit_learns_and_writes_the_run_folder(tmp_path: Path) -> None:
    result = fit(_config(tmp_path, epochs=4), log=_quiet)
    run = tmp_path / "run"
    assert result.run_dir == run
    assert sorted(p.name for p in run.iterdir()) == [
        "best.pt", "config.yaml", "confusion_matrix.png", "curves.png", "last.pt", "results.json"]
    assert result.test.images == 100 and result.test.top1 >= 0.7  # chance is 0.1; 0.80 here
    assert len(result.history) == 4 and result.history[-1]["val_top1"] == result.test.top1
    assert result.history[0]["train_loss"] > result.history[-1]["train_loss"]
    ckpt = load_checkpoint(run / "last.pt")
    assert (ckpt.config["model"], ckpt.config["num_classes"], ckpt.config["in_chans"],
            ckpt.config["image_size"], ckpt.config["hflip"]) == ("lenet5_relu", 10, 1, 32, 0.0)
    assert ckpt.class_names == [str(c) for c in range(10)]
    assert ckpt.metrics["val_top1"] == result.test.top1 and ckpt.extra["epoch"] == 4
    best = load_checkpoint(run / "best.pt")  # no validation split: the last epoch, never chosen on test
    assert best.extra["epoch"] == 4 and not result.selected_on_validation
    assert best.metrics["val_top1"] == result.best_top1 == result.history[-1]["val_top1"]
    saved = json.loads((run / "results.json").read_text())
    assert saved["test"]["top1"] == result.test.top1 and len(saved["history"]) == 4
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    # eval of the saved checkpoint reproduces the final score exactly
    again, config, names = evaluate_checkpoint(run / "last.pt", per_class=10, device="cpu")
    assert again.top1 == result.test.top1 and torch.equal(again.confusion, result.test.confusion)
    assert config.model == "lenet5_relu" and names == tuple("0123456789")
    # a second run with the same name gets a new folder
    assert fit(_config(tmp_path, epochs=1), log=_quiet).run_dir == tmp_path / "run-2"


def test_best_pt_is_chosen_on_validation_and_is_what_the_test_scores(tmp_path: Path) -> None:
    result = fit(_config(tmp_path, epochs=5, val_fraction=0.2, test_subset=2), log=_quiet)
    tops = [h["val_top1"] for h in result.history]
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert result.selected_on_validation and best.extra["epoch"] == result.best_epoch == tops.index(max(tops)) + 1
    assert result.best_epoch < 5  # (20 validation images: the 4th epoch scores best here) so the test
    again, _, _ = evaluate_checkpoint(tmp_path / "run" / "best.pt", per_class=2, device="cpu")  # scores best.pt
    assert again.top1 == result.test.top1 and torch.equal(again.confusion, result.test.confusion)


def test_resume_takes_only_the_counters_of_the_saved_schedule(tmp_path: Path) -> None:
    """A last.pt whose schedule was saved by other code (fields of another name, such as the
    'warmup' count that is now a method) resumes on the current config's schedule."""
    config = _config(tmp_path, epochs=1)
    fit(config, log=_quiet)
    path = tmp_path / "run" / "last.pt"
    payload = torch.load(path, weights_only=True)
    old = {"schedule": "cosine", "total": 20, "warmup": 0, "warmup_factor": 0.1, "step_iters": 1,
           "gamma": 0.1, "min_ratio": 0.0}
    scheduler = payload["extra"]["scheduler"]
    scheduler["lr_lambdas"] = [dict(old) for _ in scheduler["lr_lambdas"]]
    torch.save(payload, path)
    resumed = fit(dataclasses.replace(config, epochs=2), resume=path, log=_quiet)
    assert len(resumed.history) == 2 and math.isfinite(resumed.history[-1]["train_loss"])


@pytest.mark.parametrize("model, extra", [
    ("lenet5_relu", {}),
    ("mobilenet_v3_small", {"drop_rate": 0.5, "image_size": 32, "optimizer": "sgd",
                            "nesterov": True, "lr": 0.05, "subset": 8, "batch_size": 16}),
])
def test_resume_continues_bit_for_bit(tmp_path: Path, model: str, extra: dict) -> None:
    config = _config(tmp_path, model=model, schedule="onecycle", **extra)
    straight = fit(dataclasses.replace(config, name="straight"), log=_quiet)

    def interrupt(epoch: int, _: object) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(dataclasses.replace(config, name="resumed"), log=_quiet, on_epoch_end=interrupt)
    assert load_checkpoint(tmp_path / "resumed" / "last.pt").extra["epoch"] == 1
    lines: list[str] = []
    resumed = fit(dataclasses.replace(config, name="resumed"), resume=tmp_path / "resumed",
                  log=lines.append)
    assert lines[0].startswith("resumed") and lines[1].startswith("note: mnist5k has no validation split")
    assert len(lines) == 3
    a = load_checkpoint(tmp_path / "straight" / "last.pt").model
    b = load_checkpoint(tmp_path / "resumed" / "last.pt").model
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [h["train_loss"] for h in straight.history] == [h["train_loss"] for h in resumed.history]
    assert resumed.test.top1 == straight.test.top1


def test_resume_refuses_changed_settings(tmp_path: Path) -> None:
    fit(_config(tmp_path, epochs=1), log=_quiet)
    with pytest.raises(ValueError, match=r"cannot resume with a changed lr: 0.003 -> 0.2"):
        fit(_config(tmp_path, epochs=2, lr=0.2), resume=tmp_path / "run" / "last.pt", log=_quiet)
    with pytest.raises(ValueError, match="holds no optimiser state"):
        fit(_config(tmp_path, epochs=2), resume=tmp_path / "run" / "best.pt", log=_quiet)
    extended = fit(_config(tmp_path, epochs=2), resume=tmp_path / "run", log=_quiet)
    assert [h["epoch"] for h in extended.history] == [1, 2]
    stored = config_from_checkpoint(load_checkpoint(tmp_path / "run" / "last.pt"))
    assert stored.epochs == 2 and stored.in_chans == 1


def test_frozen_backbone_changes_only_the_classifier(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = _config(tmp_path, epochs=1, freeze_backbone=True)
    initial = get_model("lenet5_relu", num_classes=10).state_dict()  # same seed, same init
    fit(config, log=_quiet)
    trained = load_checkpoint(tmp_path / "run" / "last.pt").model
    changed = sorted(k for k in initial if not torch.equal(initial[k], trained[k]))
    assert changed == ["output.bias", "output.weight"]


def test_fp16_on_cpu_is_ignored_with_a_note(tmp_path: Path) -> None:
    lines: list[str] = []
    fit(_config(tmp_path, epochs=1, amp="fp16", device="cpu"), log=lines.append)
    assert lines[0].startswith("note: amp=fp16 applies on CUDA only")
    assert DeviceSetup.from_config(_config(tmp_path, amp="fp16", device="cpu"), log=_quiet).amp_dtype is None


def test_bf16_on_cpu_autocasts_and_trains(tmp_path: Path) -> None:
    setup = DeviceSetup.from_config(_config(tmp_path, amp="bf16", device="cpu"), log=_quiet)
    assert setup.amp_dtype is torch.bfloat16
    with setup.autocast():
        assert torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3)).dtype is torch.bfloat16
    result = fit(_config(tmp_path, epochs=1, amp="bf16", device="cpu"), log=_quiet)
    assert all(math.isfinite(v) for v in result.history[-1].values() if isinstance(v, float))


def test_channels_last_on_cpu_trains_like_contiguous(tmp_path: Path) -> None:
    """Same data, seed and schedule: the memory format changes rounding, not the result."""
    base = fit(_config(tmp_path, epochs=1, device="cpu", name="nchw"), log=_quiet)
    last = fit(_config(tmp_path, epochs=1, device="cpu", channels_last=True, name="nhwc"),
               log=_quiet)
    assert DeviceSetup.from_config(_config(tmp_path, channels_last=True)).channels_last
    assert abs(last.test.loss - base.test.loss) < 1e-3
    assert abs(last.test.top1 - base.test.top1) <= 0.01


def test_image_folder_run_and_class_check(tmp_path: Path) -> None:
    for c, name in enumerate(("bright", "dark")):
        for i in range(10):
            folder = tmp_path / "pics" / name
            folder.mkdir(parents=True, exist_ok=True)
            value = 200 - 150 * c + i
            Image.new("RGB", (20 + i % 3, 20), (value, value, value // 2)).save(folder / f"{i}.png")
    config = _config(tmp_path, data=str(tmp_path / "pics"), subset=None, test_subset=None,
                     epochs=3, crop_padding=0.0, brightness=0.0)  # mixed sizes -> 32 px
    result = fit(config, log=_quiet)
    assert (result.config.in_chans, result.config.num_classes, result.config.image_size) == (3, 2, 32)
    assert result.config.hflip == 0.5 and result.test.images == 4
    assert load_checkpoint(result.run_dir / "best.pt").class_names == ["bright", "dark"]
    with pytest.raises(ValueError, match=r"its 10 classes .* differ from the 2 classes"):
        evaluate_checkpoint(result.run_dir / "best.pt", data="digits", per_class=1)


def test_resolve_config_for_pretrained_lite0_on_grey_images() -> None:
    data = load_data("digits", subset=1, test_subset=1)
    config = resolve_config(TrainConfig(data="digits", model="efficientnet_lite0",
                                        weights="imagenet"), data)
    assert (config.in_chans, config.image_size, config.num_classes) == (3, 224, 10)
    model = build_model(config)
    assert model.stem[0].weight.shape == (32, 3, 3, 3)
    assert abs(float(model.classifier.weight.detach().std()) - 0.01) < 0.001  # fresh head
    assert float(model.classifier.bias.detach().abs().max()) == 0.0
    scratch = resolve_config(TrainConfig(data="digits", model="efficientnet_lite0"), data)
    assert scratch.in_chans == 1
    with pytest.raises(ValueError, match="num_classes=5 but digits has 10 classes"):
        resolve_config(TrainConfig(data="digits", num_classes=5), data)
    with pytest.raises(ValueError, match=r"image_size=16 is below the smallest input of lenet5 \(32 px\)"):
        resolve_config(TrainConfig(data="digits", image_size=16), data)


def test_train_config_checks_fields() -> None:
    with pytest.raises(ValueError, match="nesterov: needs optimizer 'sgd'"):
        TrainConfig(optimizer="adam", nesterov=True)
    with pytest.raises(ValueError, match="TrainConfig.device: expected auto, cpu"):
        TrainConfig(device="gpu0")
    with pytest.raises(ValueError, match="TrainConfig.lr"):
        TrainConfig(lr=0)


@pytest.mark.cuda
def test_fit_on_cuda_with_amp_and_channels_last(tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    result = fit(_config(tmp_path, device="cuda", amp="bf16", channels_last=True, epochs=2),
                 log=_quiet)
    assert result.test.top1 >= 0.5
    fp16 = fit(_config(tmp_path, device="cuda", amp="fp16", epochs=1, name="fp16"), log=_quiet)
    assert "scaler" in load_checkpoint(fp16.run_dir / "last.pt").extra
