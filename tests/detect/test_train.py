"""``fit`` and ``detect train`` on the tiny digit scenes with torchvision's small Faster R-CNN:
run-folder files, checkpoints, exact resume, time budget, load_detector, data and config errors."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from classify.base.checkpoint import load_checkpoint, save_checkpoint
from classify.base.config import config_to_dict, load_config
from detect.data.build import build_digit_scenes
from detect.data.formats import load_split
from detect.data.scene_config import scene_config
from detect.engine import loop
from detect.engine.config import DetectTrainConfig, config_from_dict
from detect.engine.trainer import TrainResult, fit
from detect.inference.evaluate import evaluate_detector
from detect.models.loading import load_detector
from detect.models.registry import list_detectors

REPO = Path(__file__).resolve().parents[2]
PEER = "tv_fasterrcnn_mobilenet_v3_large_320_fpn"
REPORT_FILES = ("metrics.json", "metrics.md", "pr_curves.png", "confusion_matrix.png", "examples.png")
RUN_FILES = ("last.pt", "best.pt", "config.yaml", "history.json", "curves.png", *REPORT_FILES)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    build_digit_scenes(out, scene_config("tiny"), progress=False, workers=1)
    return out / "coco"


def make_config(data: Path, output: Path, **overrides: object) -> DetectTrainConfig:
    settings = dict(data=data, output=output, detector=PEER, detector_kwargs={}, image_size=64, batch_size=4,
                    max_iters=2, warmup_iters=1, device="cpu", threads=1, progress=False, report_examples=2)
    return DetectTrainConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def run(tiny: Path, tmp_path_factory: pytest.TempPathFactory):
    config = make_config(tiny, tmp_path_factory.mktemp("run") / "run", ema=True, ema_tau=5.0)
    return config, fit(config)


# ----------------------------------------------------------------------------- one short run


def test_fit_writes_checkpoints_history_curves_and_report(run) -> None:
    config, result = run
    for name in RUN_FILES:
        assert (result.run_dir / name).is_file(), name
    assert result.stop_reason == "finished" and result.iterations == 2
    (row,) = result.history
    assert row["epoch"] == 1 and row["iteration"] == 2 and row["partial"] is True  # 2 of 3 batches
    assert row["epochs"] == pytest.approx(2 / 3)
    losses = {k: v for k, v in row.items() if k.startswith("loss")}
    assert set(losses) == {"loss", "loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    assert all(math.isfinite(v) for v in losses.values()) and losses["loss"] > 0
    assert losses["loss"] == pytest.approx(sum(v for k, v in losses.items() if k != "loss"), rel=1e-6)
    assert 0.0 <= row["val_AP"] <= 1.0 and row["val_images"] == 4
    assert row["minutes"] > 0 and row["wall_minutes"] >= row["minutes"]
    history = json.loads((result.run_dir / "history.json").read_text())
    assert history["epochs"][0]["loss"] == pytest.approx(row["loss"])
    # a run shorter than an epoch still draws a loss curve: the loss log has each iteration here
    assert [r["iteration"] for r in history["losses"]] == [1, 2]
    assert sum(r["loss"] for r in history["losses"]) / 2 == pytest.approx(row["loss"])
    assert history["stop_reason"] == "finished" and history["best_metric"] == "val_AP"
    assert history["test"]["AP"] == pytest.approx(result.test_metrics["AP"])
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["source"]["split"] == "test" and metrics["source"]["images"] == 4
    assert metrics["coco"]["AP"] == pytest.approx(result.test_metrics["AP"])
    assert load_config(DetectTrainConfig, result.run_dir / "config.yaml") == config


def test_checkpoints_hold_config_classes_metrics_and_resume_state(run) -> None:
    config, result = run
    last, best = load_checkpoint(result.last), load_checkpoint(result.best)
    assert last.class_names == [str(d) for d in range(10)] == best.class_names
    assert last.config == config_to_dict(config) and last.config["detector"] == PEER
    assert config_from_dict(last.config) == config
    assert last.metrics["val_AP"] == result.history[0]["val_AP"] and last.metrics["iteration"] == 2
    assert {"state", "optimizer", "scheduler", "scaler", "ema", "train_model", "rng"} <= set(last.extra)
    assert last.extra["state"]["iteration"] == 2 and last.extra["ema"]["updates"] == 2
    assert "optimizer" not in best.extra and best.extra["iteration"] == 2
    assert all(torch.equal(best.model[k], last.model[k]) for k in best.model)  # the only validation was the last
    ema_weights = last.extra["ema"]["module"]
    assert all(torch.equal(last.model[k], ema_weights[k]) for k in last.model)  # "model" = the EMA weights
    assert not all(torch.equal(last.model[k], last.extra["train_model"][k]) for k in last.model)


def test_load_detector_rebuilds_the_validated_model(run, tiny: Path) -> None:
    _, result = run
    model, names = load_detector(result.best, "cpu")
    assert names == [str(d) for d in range(10)] and not model.training
    saved = load_checkpoint(result.best).model
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    metrics = evaluate_detector(model, load_split(tiny, "val"), progress=False).metrics()
    for key in ("AP", "AP50", "AR100"):
        assert metrics[key] == pytest.approx(result.history[0][f"val_{key}"], abs=1e-12), key
    with torch.no_grad():
        (out,) = model([torch.rand(3, 100, 90)])
    assert set(out) == {"boxes", "scores", "labels"} and out["boxes"].shape[1] == 4


def test_load_detector_rejects_other_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_detector(tmp_path / "nope.pt")
    path = save_checkpoint(tmp_path / "classifier.pt", {"w": torch.zeros(1)}, config={"model": "resnet18"},
                           class_names=["a"])
    with pytest.raises(ValueError, match="not a detector checkpoint"):
        load_detector(path)
    path = save_checkpoint(tmp_path / "wrong.pt", {"w": torch.zeros(1)}, class_names=["a", "b"],
                           config={"detector": PEER, "image_size": 64, "detector_kwargs": {}})
    with pytest.raises(ValueError, match=r"the weights do not fit \w+: \d+ missing keys \(model\.backbone.*"
                                             r"1 unexpected keys \(w\)"):
        load_detector(path)
    path = save_checkpoint(tmp_path / "rescored.pt", {"w": torch.zeros(1)}, class_names=["a", "b"],
                           config={"detector": "faster_rcnn", "image_size": 64,
                                   "detector_kwargs": {"rescore_with": "gone/best.pt"}})
    with pytest.raises(ValueError, match="trained with rescore_with='gone/best.pt' but its checkpoint has "
                                         "no rescorer spec"):
        load_detector(path)


# ----------------------------------------------------------------------------- resume, time budget


def _state(path: Path) -> dict:
    ckpt = load_checkpoint(path)
    return {"model": ckpt.model, "train": ckpt.extra["train_model"], "opt": ckpt.extra["optimizer"]["state"],
            "rows": {(r["epoch"], r["iteration"]): r for r in ckpt.extra["state"]["history"]},
            "state": ckpt.extra["state"], "ema": ckpt.extra["ema"]["updates"], "lr": ckpt.extra["scheduler"]["_last_lr"]}


def test_resume_mid_epoch_equals_uninterrupted_training_bit_for_bit(tiny: Path, tmp_path: Path) -> None:
    # 12 images, batch 4: 3 batches an epoch; 5 iterations cross an epoch boundary after the resume
    config = make_config(tiny, tmp_path / "straight", max_iters=5, warmup_iters=2, ema=True, ema_tau=3.0,
                         val_split=None, test_split=None, hflip=0.5, color_jitter=0.3, scale_jitter=(0.7, 1.3),
                         translate=True, milestones=(0.5,))
    straight = fit(config)
    split = dataclasses.replace(config, output=tmp_path / "split")
    first = fit(split, stop_after=2)
    assert first.stop_reason == "stop_after" and first.iterations == 2 and first.history[-1]["partial"]
    second = fit(split, resume=first.last)
    assert second.stop_reason == "finished" and second.iterations == 5
    a, b = _state(straight.last), _state(second.last)
    for key in ("model", "train"):
        assert a[key].keys() == b[key].keys()
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    assert all(torch.equal(a["opt"][i]["momentum_buffer"], b["opt"][i]["momentum_buffer"]) for i in a["opt"])
    assert a["ema"] == b["ema"] == 5 and a["lr"] == b["lr"]
    assert list(a["rows"]) == [(1, 3), (2, 5)] and list(b["rows"]) == [(1, 2), (1, 3), (2, 5)]
    for key, row in a["rows"].items():
        assert {k: v for k, v in row.items() if k.startswith(("loss", "lr"))} == \
               {k: v for k, v in b["rows"][key].items() if k.startswith(("loss", "lr"))}
    assert [r["iteration"] for r in a["state"]["loss_log"]] == [1, 2, 3, 4, 5]
    assert b["state"]["train_minutes"] > first.minutes


def test_mosaic_run_closes_mosaic_on_time_and_resumes_bit_for_bit(tiny: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """mosaic 1 (+ mixup 0.5) with close_mosaic 1 over 5 iterations of 3-batch epochs: the batches of
    epoch 1 are all mosaics, those of epoch 2 none, whether the run goes straight or stops after
    2 iterations and resumes; the weights agree bit for bit."""
    flags: list[list[bool]] = []
    real = loop.training_targets

    def spy(targets, device):
        flags.append([t["mosaic"] for t in targets])
        return real(targets, device)

    monkeypatch.setattr(loop, "training_targets", spy)
    config = make_config(tiny, tmp_path / "straight", max_iters=5, warmup_iters=2, val_split=None, test_split=None,
                         mosaic=1.0, mixup=0.5, close_mosaic=1, color_jitter=0.3, translate=True, ema=True,
                         ema_tau=3.0)
    straight = fit(config)
    assert flags == [[True] * 4] * 3 + [[False] * 4] * 2
    flags.clear()
    split = dataclasses.replace(config, output=tmp_path / "split")
    first = fit(split, stop_after=2)
    second = fit(split, resume=first.last)
    assert second.iterations == 5 and flags == [[True] * 4] * 3 + [[False] * 4] * 2
    a, b = _state(straight.last), _state(second.last)
    for key in ("model", "train"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    assert all(torch.equal(a["opt"][i]["momentum_buffer"], b["opt"][i]["momentum_buffer"]) for i in a["opt"])
    assert [r["loss"] for r in a["state"]["loss_log"]] == [r["loss"] for r in b["state"]["loss_log"]]


def test_the_loss_log_averages_windows_across_a_resume(tiny: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows of 2 iterations (a 5-iteration run, 2 log points); a stop after 3 splits the second
    window, and the resumed run finishes it as the uninterrupted run does."""
    monkeypatch.setattr("detect.engine.trainer.LOSS_LOG_POINTS", 2)
    config = make_config(tiny, tmp_path / "straight", max_iters=5, val_split=None, test_split=None)
    straight = fit(config)
    split = dataclasses.replace(config, output=tmp_path / "split")
    fit(split, stop_after=3)
    second = fit(split, resume=tmp_path / "split" / "last.pt")
    logs = [load_checkpoint(r.last).extra["state"]["loss_log"] for r in (straight, second)]
    assert [r["iteration"] for r in logs[0]] == [2, 4] == [r["iteration"] for r in logs[1]]
    assert [{k: v for k, v in r.items() if k != "minutes"} for r in logs[0]] == \
           [{k: v for k, v in r.items() if k != "minutes"} for r in logs[1]]
    assert logs[1][1]["minutes"] > logs[1][0]["minutes"]


def test_eval_every_iters_validates_and_tests_mid_epoch(tiny: Path, tmp_path: Path) -> None:
    # 3 batches an epoch, marks every 2 iterations: rows at 2 (mark), 3 (epoch end), 4 (mark), 5 (end)
    config = make_config(tiny, tmp_path / "marks", max_iters=5, eval_every_iters=2, eval_period=0,
                         test_period=1)
    result = fit(config)
    rows = [(r["iteration"], r["partial"], "val_AP" in r, "test_AP" in r) for r in result.history]
    assert rows == [(2, True, True, True), (3, False, False, True), (4, True, True, True),
                    (5, True, True, False)]
    minutes = [r["minutes"] for r in result.history]
    assert minutes == sorted(minutes) and minutes[0] > 0


def test_time_budget_stops_cleanly_validates_and_saves(tiny: Path, tmp_path: Path) -> None:
    config = make_config(tiny, tmp_path / "budget", max_iters=None, epochs=3, time_budget_min=1e-6,
                         test_split=None)
    result = fit(config)
    assert result.stop_reason == "time_budget" and result.iterations == 1
    (row,) = result.history
    assert row["partial"] and row["iteration"] == 1 and "val_AP" in row
    assert load_checkpoint(result.last).extra["state"]["batch_in_epoch"] == 1
    assert result.best.is_file() and (tmp_path / "budget" / "curves.png").is_file()
    with pytest.raises(FileExistsError, match="already holds a run"):
        fit(config)


class _Clock:
    """A stand-in for ``time`` in detect.engine.trainer: training takes 6 s (0.1 min) an iteration."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


@pytest.fixture
def six_seconds_an_iteration(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make detect.engine.trainer's clock read 6 s (0.1 min) of training per iteration, whatever the machine."""
    import detect.engine.trainer as train_module

    clock, real_step = _Clock(), train_module.train_one_epoch

    def timed(*args, **kwargs):
        stats = real_step(*args, **kwargs)
        clock.now += 6.0 * stats["iterations"]
        return stats

    monkeypatch.setattr(train_module, "time", clock)
    monkeypatch.setattr(train_module, "train_one_epoch", timed)


def fitted_config(tiny: Path, output: Path) -> DetectTrainConfig:
    return make_config(tiny, output, max_iters=30, eval_every_iters=2, time_budget_min=1.0,
                       fit_schedule_to_budget=True, schedule="cosine", min_lr_ratio=0.1, test_split=None)


def assert_fitted_to_nine_iterations(result: TrainResult, config: DetectTrainConfig) -> None:
    # after 2 iterations in 0.2 min: 0.8 min left = 8 more at that speed, 7 with 1% to spare -> 9
    assert result.stop_reason == "finished" and result.iterations == 9
    assert result.minutes == pytest.approx(0.9)
    assert json.loads((result.run_dir / "history.json").read_text())["total_iterations"] == 9
    extra = load_checkpoint(result.last).extra
    assert extra["scheduler"]["lr_lambdas"][0]["total_iters"] == 9
    assert extra["optimizer"]["param_groups"][0]["lr"] == pytest.approx(config.lr * 0.1)  # the cosine's end


def test_schedule_fitted_to_the_time_budget_ends_with_it(tiny: Path, tmp_path: Path,
                                                        six_seconds_an_iteration: None) -> None:
    config = fitted_config(tiny, tmp_path / "fit")
    assert_fitted_to_nine_iterations(fit(config), config)


def test_resume_keeps_the_fitted_schedule(tiny: Path, tmp_path: Path, six_seconds_an_iteration: None) -> None:
    config = fitted_config(tiny, tmp_path / "fit")
    first = fit(config, stop_after=4)
    assert first.stop_reason == "stop_after"
    assert load_checkpoint(first.last).extra["scheduler"]["lr_lambdas"][0]["total_iters"] == 9
    assert_fitted_to_nine_iterations(fit(config, resume=first.last), config)


def test_fitted_schedule_is_never_longer_than_configured(tiny: Path, tmp_path: Path) -> None:
    config = make_config(tiny, tmp_path / "fit_long", max_iters=3, eval_every_iters=1, time_budget_min=60.0,
                         fit_schedule_to_budget=True, test_split=None)
    result = fit(config)
    assert result.stop_reason == "finished" and result.iterations == 3


def test_fit_schedule_to_budget_needs_a_budget(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fit_schedule_to_budget: needs time_budget_min"):
        make_config(tiny, tmp_path / "x", fit_schedule_to_budget=True)


# ----------------------------------------------------------------------------- data and model errors


def _copy_with_bad_boxes(tiny: Path, out: Path) -> tuple[Path, list[tuple[str, int, int]]]:
    (out / "annotations").mkdir(parents=True)
    (out / "images").symlink_to(tiny / "images")
    for name in ("val", "test"):
        (out / "annotations" / f"instances_{name}.json").write_text(
            (tiny / "annotations" / f"instances_{name}.json").read_text())
    data = json.loads((tiny / "annotations" / "instances_train.json").read_text())
    anns = data["annotations"]
    anns[0]["bbox"][2] = 0.0  # zero width
    anns[5]["bbox"][0] = 500.0  # outside the 128 px image
    (out / "annotations" / "instances_train.json").write_text(json.dumps(data))
    images = {im["id"]: im["file_name"] for im in data["images"]}
    index = lambda i: sum(a["image_id"] == anns[i]["image_id"] for a in anns[:i])  # noqa: E731
    return out, [(images[anns[i]["image_id"]], anns[i]["image_id"], index(i)) for i in (0, 5)]


def test_degenerate_boxes_stop_training_before_it_starts(tiny: Path, tmp_path: Path) -> None:
    data, bad = _copy_with_bad_boxes(tiny, tmp_path / "bad")
    with pytest.raises(ValueError, match=r"2 bad annotation\(s\) in split 'train'") as info:
        fit(make_config(data, tmp_path / "never"))
    for file_name, image_id, index in bad:
        assert f"{file_name} (image_id {image_id}) object {index}: box" in str(info.value)
    assert "non-positive size" in str(info.value) and "lies outside the 128x128 image" in str(info.value)
    assert not (tmp_path / "never" / "last.pt").exists()


def test_missing_split_and_unknown_builder_argument_are_clear_errors(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no val split 'valid' in this coco dataset; it has \['test', 'train', "
                                         r"'val'\].*val_split: null"):
        fit(make_config(tiny, tmp_path / "a", val_split="valid"))
    with pytest.raises(ValueError, match=rf"cannot build detector '{PEER}' with detector_kwargs \{{'weights_backbone': 'DEFAULT'\}}: "
                                         r".*multiple values for keyword argument 'weights_backbone'"):
        fit(make_config(tiny, tmp_path / "b", detector_kwargs={"weights_backbone": "DEFAULT"}))
    with pytest.raises(ValueError, match="unknown detector 'fasterrcnn_tiny'"):
        fit(make_config(tiny, tmp_path / "c", detector="fasterrcnn_tiny"))


# ----------------------------------------------------------------------------- config


def test_config_checks_and_detector_kwargs_parsing(tmp_path: Path) -> None:
    assert DetectTrainConfig(detector_kwargs="{backbone: resnet18, fpn: true}").detector_kwargs == \
        {"backbone": "resnet18", "fpn": True}
    with pytest.raises(ValueError, match=r"\['image_size', 'num_classes'\] are set by the run itself"):
        DetectTrainConfig(detector_kwargs={"num_classes": 3, "image_size": 64})
    with pytest.raises(ValueError, match=r"detector_kwargs: expected a mapping .* got '\[1, 2\]'"):
        DetectTrainConfig(detector_kwargs="[1, 2]")
    with pytest.raises(ValueError, match=r"milestones: expected strictly increasing fractions, got \[0.8, 0.5\]"):
        DetectTrainConfig(milestones=(0.8, 0.5))
    preset = tmp_path / "typo.yaml"
    preset.write_text("epoch: 3\nlr: 0.01\n")
    with pytest.raises(ValueError, match=rf"unknown key 'epoch' in {preset}:1; did you mean 'epochs'"):
        load_config(DetectTrainConfig, preset)
    preset.write_text("optimizer: adam\n")
    with pytest.raises(ValueError, match=r"'optimizer' .* expected one of 'sgd', 'adamw', got 'adam'.*did you mean 'adamw'"):
        load_config(DetectTrainConfig, preset)
    quick = load_config(DetectTrainConfig, REPO / "configs/detect/train_quick.yaml")
    assert config_from_dict(config_to_dict(quick)) == quick
    # checkpoints written before amp became none|bf16|fp16 stored a bool (CUDA fp16)
    for old, new in ((False, "none"), (True, "fp16")):
        assert config_from_dict({**config_to_dict(quick), "amp": old}).amp == new


# ----------------------------------------------------------------------------- command line


def run_cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "detect", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_cli_trains_one_epoch_from_the_quick_preset(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli_run"
    # the preset's own detector once detect.models.rcnn.faster_rcnn is registered, else the torchvision peer
    model = [] if "faster_rcnn" in list_detectors() else ["--detector", PEER, "--detector_kwargs", "{}"]
    result = run_cli("train", "--config", "configs/detect/train_quick.yaml", "--epochs", 1, "--max_iters", "none",
                     "--data", tiny, "--output", out, *model, "--image_size", 64, "--batch_size", 6,
                     "--threads", 1, "--device", "cpu", "--progress", "false", "--report_examples", 1)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in RUN_FILES:
        assert (out / name).is_file(), name
    assert "finished: 2 iterations" in result.stdout and f"run folder: {out}" in result.stdout
    history = json.loads((out / "history.json").read_text())
    assert [r["iteration"] for r in history["epochs"]] == [2] and not history["epochs"][0]["partial"]
    again = run_cli("resume", out / "last.pt")
    assert again.returncode == 2 and again.stderr.strip().splitlines() == [
        "error: nothing to train: the run is at iteration 2 of 2; raise epochs or max_iters to train longer"]


def test_cli_errors_are_one_line_with_suggestions(tmp_path: Path) -> None:
    preset = tmp_path / "typo.yaml"
    preset.write_text("detector: faster_rcnn\nwarmup_iter: 10\n")
    result = run_cli("train", "--config", preset)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: unknown key 'warmup_iter' in {preset}:2; did you mean 'warmup_iters'?"
    result = run_cli("train", "--wieght_decay", "0.1")
    assert result.returncode == 2 and "did you mean --weight-decay?" in result.stderr
    result = run_cli("train", "--data", tmp_path / "nothing", "--output", tmp_path / "run")
    assert result.returncode == 2 and result.stderr.strip() == f"error: dataset not found: {tmp_path / 'nothing'}"
    assert not (tmp_path / "run").exists()  # nothing is written before the data and the model are good
    result = run_cli("train", "--detector", "yolov8n", "--detector-kwargs", "{}", "--data", tmp_path / "nothing",
                     "--output", tmp_path / "yolo")
    assert result.returncode == 2 and "Traceback" not in result.stderr  # ultralytics' trainer: data checked first
    assert result.stderr.strip() == f"error: dataset not found: {tmp_path / 'nothing'}"
    assert not (tmp_path / "yolo").exists()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_amp_training_resumes_and_reports(tiny: Path, tmp_path: Path) -> None:
    config = make_config(tiny, tmp_path / "cuda", device="cuda", amp="fp16", ema=True, max_iters=4, test_split=None)
    first = fit(config, stop_after=2)
    assert first.stop_reason == "stop_after"
    result = fit(config, resume=first.last)
    assert result.stop_reason == "finished" and result.iterations == 4
    last = load_checkpoint(result.last)
    assert last.extra["scaler"]["scale"] > 0 and "cuda" in last.extra["rng"]
    assert all(math.isfinite(r["loss"]) for r in result.history)
    model, _ = load_detector(result.best, "cuda")
    assert next(model.parameters()).is_cuda


def test_detect_eval_runs_a_training_checkpoint(run, tiny: Path, tmp_path: Path) -> None:
    config, result = run
    out = tmp_path / "eval"
    done = run_cli("eval", tiny, "--split", "test", "--checkpoint", result.run_dir / "best.pt", "--out", out,
                   "--examples", "1")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    again = json.loads((result.run_dir / "metrics.json").read_text())  # fit's own test report, same weights
    assert metrics["coco"]["AP"] == pytest.approx(again["coco"]["AP"], abs=1e-12)
    wrong = run_cli("eval", tiny, "--checkpoint", result.run_dir / "best.pt", "--weights", result.run_dir / "last.pt",
                    "--out", out)
    assert wrong.returncode == 2 and "a checkpoint carries its own" in wrong.stderr
    larger = run_cli("eval", tiny, "--split", "test", "--checkpoint", result.run_dir / "best.pt",
                     "--image-size", config.image_size * 2, "--out", tmp_path / "larger", "--examples", "0")
    assert larger.returncode == 0, larger.stderr
    assert (tmp_path / "larger" / "metrics.json").is_file()
    model, _ = load_detector(result.run_dir / "best.pt", image_size=config.image_size * 2)
    assert model.model.transform.min_size == (config.image_size * 2,)  # the peer's torchvision transform


def test_cpu_bfloat16_channels_last_training_saves_float32_contiguous_loadable_weights(tiny: Path,
                                                                                       tmp_path: Path) -> None:
    kwargs = {"backbone": "resnet18", "out_channels": 32, "representation_size": 32, "box_batch_size_per_image": 16}
    config = make_config(tiny, tmp_path / "bf16", detector="faster_rcnn", detector_kwargs=kwargs, amp="bf16",
                         channels_last=True, ema=True, ema_tau=3.0, max_iters=3, test_split=None)
    result = fit(config)
    assert result.stop_reason == "finished" and result.iterations == 3
    row = result.history[-1]
    assert all(math.isfinite(v) for k, v in row.items() if k.startswith("loss")) and row["loss"] > 0
    weights = load_checkpoint(result.best).model
    assert {v.dtype for v in weights.values() if v.is_floating_point()} == {torch.float32}
    model, _ = load_detector(result.best)
    assert all(p.is_contiguous() for p in model.parameters())  # a checkpoint loads into a plain model whatever format trained it
    with torch.no_grad():
        out = model([torch.rand(3, 64, 64)])[0]
    assert out["boxes"].dtype == torch.float32


def test_fp16_on_the_cpu_trains_in_float32_with_a_note(tiny: Path, tmp_path: Path, capsys) -> None:
    result = fit(make_config(tiny, tmp_path / "fp16", amp="fp16", max_iters=1, val_split=None, test_split=None))
    assert result.iterations == 1 and "amp: fp16 is used on CUDA only" in capsys.readouterr().out
