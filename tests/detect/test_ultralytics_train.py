"""``detect train --detector yolov8n``: ultralytics' trainer inside the project's run, offline.

One epoch of yolov8n at 64 px on the tiny digit scenes: the run folder of the project's loop, a
best.pt that loads, evaluates and predicts like any project checkpoint (its network equal to
ultralytics' own best.pt), the dataset conversion (labels round-trip, names kept, no val split),
the settings mapping, and clear errors for bad input.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from classify.base.checkpoint import load_checkpoint
from classify.base.config import config_from_args, load_config
from detect.cli import build_parser
from detect.cli import main as detect_main
from detect.data.build import build_digit_scenes
from detect.data.formats import load_split
from detect.data.scene_config import scene_config
from detect.data.ultralytics_layout import write_ultralytics_layout
from detect.data.yolo_txt import read_yolo
from detect.engine.config import DetectTrainConfig
from detect.engine.trainer import TrainResult, fit
from detect.engine.ultralytics_train import best_row, freeze_layers, train_arguments, trains_with_ultralytics
from detect.models.loading import DetectorSpec, load_detector
from detect.models.peers.ultralytics import UltralyticsDetector
from detect.structures import DatasetSplit, ImageRecord, ObjectAnnotation

REPORT_FILES = ("metrics.json", "metrics.md", "pr_curves.png", "confusion_matrix.png", "examples.png")
RUN_FILES = ("last.pt", "best.pt", "config.yaml", "history.json", "curves.png", *REPORT_FILES)
NAMES = [str(i) for i in range(10)]


@contextlib.contextmanager
def network_recorder() -> Iterator[list[object]]:
    """Refuse and record every socket connection and DNS look-up (ultralytics swallows network
    errors, so a refusal alone would not show that it tried)."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args[1:2] or args[:1])
        raise OSError("network disabled by test")

    with pytest.MonkeyPatch.context() as mp:
        for owner, name in ((socket.socket, "connect"), (socket.socket, "connect_ex"), (socket, "getaddrinfo"),
                            (socket, "create_connection")):
            mp.setattr(owner, name, refuse)
        yield attempts


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    build_digit_scenes(out, scene_config("tiny"), progress=False, workers=1)
    return out / "coco"


def make_config(data: Path, output: Path, **overrides: object) -> DetectTrainConfig:
    settings = dict(data=data, output=output, detector="yolov8n", detector_kwargs={}, image_size=64, batch_size=4,
                    epochs=1, warmup_iters=1, device="cpu", threads=1, num_workers=0, progress=False,
                    report_examples=2)
    return DetectTrainConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def run(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[DetectTrainConfig, TrainResult, list]:
    config = make_config(tiny, tmp_path_factory.mktemp("run") / "run")
    with network_recorder() as attempts:
        result = fit(config)
    return config, result, attempts


# ----------------------------------------------------------------------------- one epoch


def test_run_folder_matches_the_project_loop_and_opens_no_connection(run) -> None:
    config, result, attempts = run
    assert attempts == []
    for name in RUN_FILES:
        assert (result.run_dir / name).is_file(), name
    assert (result.run_dir / "ultralytics" / "weights" / "best.pt").is_file()
    assert (result.run_dir / "ultralytics" / "results.csv").is_file()
    assert result.stop_reason == "finished" and result.iterations == 3  # 12 images, batches of 4
    (row,) = result.history
    assert row["epoch"] == 1 and row["iteration"] == 3 and row["partial"] is False
    losses = {k: v for k, v in row.items() if k.startswith("loss")}
    assert set(losses) == {"loss", "loss_box", "loss_cls", "loss_dfl"}
    assert all(math.isfinite(v) and v > 0 for v in losses.values())
    assert losses["loss"] == pytest.approx(losses["loss_box"] + losses["loss_cls"] + losses["loss_dfl"])
    assert 0.0 <= row["val_AP"] <= row["val_AP50"] <= 1.0 and row["minutes"] > 0
    history = json.loads((result.run_dir / "history.json").read_text())
    assert history["trainer"] == "ultralytics" and history["best_epoch"] == 1
    assert history["epochs"][0]["loss_cls"] == pytest.approx(row["loss_cls"])
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["source"]["split"] == "test" and metrics["source"]["images"] == 4
    assert metrics["coco"]["AP"] == pytest.approx(result.test_metrics["AP"]) == history["test"]["AP"]
    assert load_config(DetectTrainConfig, result.run_dir / "config.yaml") == config
    layout = yaml.safe_load((result.run_dir / "ultralytics" / "data" / "data.yaml").read_text())
    assert layout["val"] == "images/val" and layout["names"] == dict(enumerate(NAMES))


def test_best_pt_is_a_project_checkpoint_equal_to_ultralytics_weights(run, tiny: Path) -> None:
    _, result, _ = run
    ckpt = load_checkpoint(result.best)
    assert ckpt.config["detector"] == "yolov8n" and ckpt.class_names == NAMES
    assert ckpt.extra["trainer"] == "ultralytics" and ckpt.metrics["epoch"] == 1
    model, names = load_detector(result.best)
    assert names == NAMES and not model.training
    theirs = UltralyticsDetector.from_weights(result.run_dir / "ultralytics" / "weights" / "best.pt", imgsz=64).eval()
    images = [img for img, _ in _images(tiny, 2)]
    canvas = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model.net(canvas)[0], theirs.net(canvas)[0])  # the same weights, to the bit
        for m in (model, theirs):
            m.score_threshold = 0.0  # keep every candidate: compare boxes, not an empty list
        ours, ref = model(images), theirs(images)
    for out, other, image in zip(ours, ref, images):
        assert set(out) == {"boxes", "scores", "labels"} and out["boxes"].shape[1] == 4
        assert len(out["boxes"]) > 0 and out["labels"].dtype == torch.int64 and int(out["labels"].max()) < 10
        assert float(out["boxes"][:, 2].max()) <= image.shape[2] and float(out["boxes"][:, 3].max()) <= image.shape[1]
        for key in ("boxes", "scores", "labels"):
            assert torch.equal(out[key], other[key])


def test_detect_eval_scores_the_checkpoint_like_the_final_report(run, tiny: Path, tmp_path: Path) -> None:
    _, result, _ = run
    code = detect_main(["eval", str(tiny), "--split", "test", "--checkpoint", str(result.best), "--out",
                        str(tmp_path / "eval"), "--examples", "0"])
    assert code == 0
    ours = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    report = json.loads((result.run_dir / "metrics.json").read_text())
    assert ours["coco"] == report["coco"] and ours["source"]["images"] == 4


def test_ultralytics_weights_load_as_a_detector_and_class_counts_are_checked(run) -> None:
    _, result, _ = run
    weights = result.run_dir / "ultralytics" / "weights" / "best.pt"
    model, names = DetectorSpec(name="yolov8n", weights=weights, image_size=(64,)).load(class_names=NAMES)
    assert names == NAMES and model.num_classes == 10
    with pytest.raises(ValueError, match=r"predicts 10 classes .* but the dataset has 3"):
        DetectorSpec(name="yolov8n", weights=weights).load(class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"was trained on classes \[0, 1, .*but the dataset has \[a, b\]"):
        DetectorSpec(checkpoint=result.best).load(class_names=["a", "b"])


def test_no_val_split_and_a_start_from_local_weights(run, tiny: Path, tmp_path: Path) -> None:
    _, first, _ = run
    start = first.run_dir / "ultralytics" / "weights" / "last.pt"
    config = make_config(tiny, tmp_path / "run", val_split=None, test_split=None, warmup_iters=0, lr=1e-12,
                         detector_kwargs={"weights": str(start)})
    with network_recorder() as attempts:
        result = fit(config)
    assert attempts == [] and result.best_value is None and result.test_metrics is None
    assert not any(k.startswith("val_") for k in result.history[0])  # ultralytics scored training images there
    data = yaml.safe_load((result.run_dir / "ultralytics" / "data" / "data.yaml").read_text())
    assert data["val"] == "images/train" and "test" not in data
    best, last = load_checkpoint(result.best), load_checkpoint(result.last)
    assert "weights" not in best.config["detector_kwargs"] and best.extra["initial_weights"] == str(start)
    assert all(torch.equal(best.model[k], last.model[k]) for k in best.model)  # no val: best is the final weights
    before = load_checkpoint(first.last).model
    convs = [k for k in before if k.endswith("conv.weight")]
    # lr 1e-12 and no warm-up: the convolutions are still those of the weights it started from
    assert max(float((last.model[k] - before[k]).abs().max()) for k in convs) < 1e-6
    model, _ = load_detector(result.best)
    assert model.num_classes == 10


# ----------------------------------------------------------------------------- dataset conversion


def _images(root: Path, n: int) -> list[tuple[torch.Tensor, object]]:
    from torchvision.transforms.functional import pil_to_tensor

    split = load_split(root, "test")
    return [(pil_to_tensor(Image.open(split.image_path(r)).convert("RGB")).float() / 255, r) for r in split.images[:n]]


def test_converted_labels_round_trip_and_names_are_kept(tiny: Path, tmp_path: Path) -> None:
    splits = {name: load_split(tiny, name) for name in ("train", "val", "test")}
    layout = write_ultralytics_layout(splits, tmp_path / "u")
    assert layout.images == {"train": 12, "val": 4, "test": 4} and not layout.val_is_train
    for name, split in splits.items():
        back = read_yolo(layout.yaml_path, name)[0]
        assert back.class_names == NAMES and len(back.images) == len(split.images)
        for a, b in zip(split.images, back.images):
            assert (a.width, a.height) == (b.width, b.height)
            assert [o.label for o in a.objects] == [o.label for o in b.objects]
            for oa, ob in zip(a.objects, b.objects):
                assert all(abs(p - q) / s <= 1e-6 for p, q, s in zip(oa.box, ob.box, (a.width, a.height) * 2))
    from ultralytics.data.utils import check_det_dataset

    checked = check_det_dataset(str(layout.yaml_path))  # ultralytics' own reader takes it as is
    assert checked["names"] == dict(enumerate(NAMES)) and checked["nc"] == 10
    assert Path(checked["val"]) == tmp_path.resolve() / "u" / "images" / "val"


def test_layout_flattens_names_drops_crowds_and_fills_val(tmp_path: Path) -> None:
    for rel in ("a/x.png", "a/x.jpg"):
        (tmp_path / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 20)).save(tmp_path / "src" / rel)
    images = [ImageRecord(1, "a/x.png", 40, 20, (ObjectAnnotation((4.0, 2.0, 24.0, 12.0), 1),
                                                 ObjectAnnotation((0.0, 0.0, 40.0, 20.0), 0, iscrowd=True))),
              ImageRecord(2, "a/x.jpg", 40, 20, (ObjectAnnotation((0.0, 0.0, 10.0, 10.0), 0, difficult=True),))]
    split = DatasetSplit(["traffic light", "café"], images, tmp_path / "src", "train")
    layout = write_ultralytics_layout({"train": split}, tmp_path / "u")
    assert layout.val_is_train and layout.class_names == ["traffic light", "café"]
    labels = tmp_path / "u" / "labels" / "train"
    # folders flattened; x.png and x.jpg would share a label file: the second is prefixed by its image id
    assert sorted(p.name for p in labels.iterdir()) == ["2_a__x.txt", "a__x.txt"]
    assert (labels / "a__x.txt").read_text() == "1 0.35 0.35 0.5 0.5\n"  # the crowd region is left out
    assert (labels / "2_a__x.txt").read_text() == "0 0.125 0.25 0.25 0.5\n"  # difficult is kept
    data = yaml.safe_load(layout.yaml_path.read_text())
    assert data["val"] == data["train"] == "images/train" and data["names"] == {0: "traffic light", 1: "café"}
    again = write_ultralytics_layout({"train": split.with_images(images[:1])}, tmp_path / "u")  # stale files go
    assert again.images == {"train": 1} and [p.name for p in labels.iterdir()] == ["a__x.txt"]
    with pytest.raises(ValueError, match="expected a 'train' split"):
        write_ultralytics_layout({"val": split}, tmp_path / "v")


# ----------------------------------------------------------------------------- settings


def test_settings_map_to_ultralytics_arguments(tmp_path: Path) -> None:
    cpu, data, project = torch.device("cpu"), tmp_path / "data.yaml", tmp_path / "run" / "ultralytics"
    base = make_config(tmp_path, tmp_path / "run")
    args, notes = train_arguments(base, data, 3, cpu, project)
    assert {k: args[k] for k in ("data", "epochs", "batch", "imgsz", "optimizer", "lr0", "momentum", "weight_decay",
                                 "seed", "device", "workers", "amp", "val", "project", "name", "exist_ok")} == {
        "data": str(data), "epochs": 1, "batch": 4, "imgsz": 64, "optimizer": "SGD", "lr0": 0.02, "momentum": 0.9,
        "weight_decay": 1e-4, "seed": 0, "device": "cpu", "workers": 0, "amp": False, "val": True,
        "project": str(tmp_path / "run"), "name": "ultralytics", "exist_ok": True}
    assert args["warmup_epochs"] == pytest.approx(1 / 3) and "time" not in args and "freeze" not in args
    # step schedule: linear decay to the same final LR (gamma^2); scale (0.8, 1.2) -> 0.2; color -> hsv s/v
    assert (args["cos_lr"], args["lrf"], args["scale"], args["fliplr"]) == (False, 0.01, 0.2, 0.0)
    assert (args["hsv_h"], args["hsv_s"], args["hsv_v"]) == (0.0, 0.2, 0.2)
    assert (args["translate"], args["mosaic"], args["close_mosaic"], args["mixup"]) == (0.0, 0.0, 0, 0.0)
    assert any("schedule step" in n for n in notes) and any("ema false" in n for n in notes)
    config = make_config(tmp_path, tmp_path / "run", max_iters=7, warmup_iters=6, optimizer="adamw",
                         schedule="cosine", min_lr_ratio=0.05, hflip=0.5, scale_jitter=(0.5, 1.5), amp="bf16",
                         time_budget_min=30, val_split=None, freeze=("net.model.1.", "net.model.0"),
                         channels_last=True, ema=True, num_workers=2, seed=3, translate=True, mosaic=1.0,
                         close_mosaic=2, mixup=0.1)
    args, notes = train_arguments(config, data, 3, cpu, project)
    assert args["epochs"] == 3 and args["warmup_epochs"] == 2.0 and args["optimizer"] == "AdamW"
    assert (args["cos_lr"], args["lrf"], args["fliplr"], args["scale"]) == (True, 0.05, 0.5, 0.5)
    assert args["time"] == 0.5 and args["val"] is False and args["amp"] is False and args["freeze"] == [0, 1]
    assert args["channels_last"] is True and args["workers"] == 2 and args["seed"] == 3
    assert (args["translate"], args["mosaic"], args["close_mosaic"], args["mixup"]) == (0.1, 1.0, 2, 0.1)
    assert any("max_iters 7 -> 3 epoch(s)" in n for n in notes) and any("amp bf16" in n for n in notes)
    assert not any("ema" in n for n in notes)
    cuda, _ = train_arguments(make_config(tmp_path, tmp_path / "r", amp="fp16", schedule="constant",
                                          scale_jitter=None, eval_period=0),
                              data, 3, torch.device("cuda", 1), project)
    assert (cuda["device"], cuda["amp"], cuda["lrf"], cuda["scale"], cuda["val"]) == ("1", True, 1.0, 0.0, False)
    with pytest.raises(ValueError, match=r"expected prefixes 'net.model.<index>'.*got 'net.model.0.cv1'"):
        freeze_layers(("net.model.0.cv1",))


def test_dispatch_cli_alias_and_best_row() -> None:
    assert all(trains_with_ultralytics(n) for n in ("yolov8n", "yolov8s", "yolo11n", "yolo11s"))
    assert not trains_with_ultralytics("tv_fasterrcnn_mobilenet_v3_large_320_fpn")
    args = build_parser().parse_args(["train", "--model", "yolo11n", "--epochs", "2"])
    config = config_from_args(DetectTrainConfig, args)
    assert (config.detector, config.epochs) == ("yolo11n", 2)
    rows = [{"epoch": 1, "val_AP": 0.1, "val_AP50": 0.2}, {"epoch": 2, "val_AP": 0.3, "val_AP50": 0.5},
            {"epoch": 3, "val_AP": 0.3, "val_AP50": 0.5}, {"epoch": 4, "val_AP": 0.2, "val_AP50": 0.6}]
    # ties: ultralytics saves best.pt again at an equal fitness, so the later epoch
    assert best_row(rows, {"metrics/mAP50-95(B)": 0.3, "metrics/mAP50(B)": 0.5})["epoch"] == 3


# ----------------------------------------------------------------------------- bad input


def _yaml_dataset(tmp_path: Path, text: str) -> Path:
    (tmp_path / "images" / "train").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(tmp_path / "images" / "train" / "a.png")
    path = tmp_path / "data.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "message"), [
    ("train: images/train\nval: images/train\n", "{yaml}: expected a mapping with a 'names' key"),
    ("names: [a]\nval: images/train\n", "{yaml}: no train split 'train' in this yolo dataset; it has ['val']"),
    ("names: [a]\ntrain: images/nowhere\n", "{yaml}: split 'train' points to {root}/images/nowhere, which does not"),
])
def test_bad_dataset_yaml_is_a_clear_error_and_nothing_is_written(tmp_path: Path, text: str, message: str) -> None:
    path = _yaml_dataset(tmp_path, text)
    out = tmp_path / "run"
    with pytest.raises(ValueError) as info:
        fit(make_config(path, out, val_split=None, test_split=None))
    assert str(info.value).startswith(message.format(yaml=path, root=tmp_path))
    assert not out.exists()


def test_bad_settings_and_weights_are_clear_errors(run, tiny: Path, tmp_path: Path) -> None:
    _, first, _ = run
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="yolov8n at image_size 100: imgsz must be a multiple of the model stride 32"):
        fit(make_config(tiny, out, image_size=100))
    with pytest.raises(ValueError, match=r"holds a yolov8n.yaml model .* the detector 'yolo11n' is yolo11n.yaml"):
        fit(make_config(tiny, out, detector="yolo11n",
                        detector_kwargs={"weights": str(first.run_dir / "ultralytics" / "weights" / "best.pt")}))
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        fit(make_config(tiny, out, detector_kwargs={"weights": str(tmp_path / "yolov8n.pt")}))
    with pytest.raises(ValueError, match="cannot be resumed by detect resume"):
        fit(make_config(tiny, out), resume=first.last)
    with pytest.raises(FileExistsError, match="already holds a run"):
        fit(make_config(tiny, first.run_dir))
    assert not out.exists()
