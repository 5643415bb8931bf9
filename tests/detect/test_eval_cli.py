"""``detect eval`` end to end on a tiny dataset: every output file, AP printed, clear one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import random_split
from PIL import Image
from torch import nn

from detect.cli import main as detect_main
from detect.data.coco import write_coco
from detect.evaluation.outputs import OUTPUT_FILES
from detect.evaluation.results_io import write_coco_results, write_yolo_predictions
from detect.structures import DatasetSplit, ImageRecord, ObjectAnnotation
from detect.tasks.evaluate import run_evaluation

REPO = Path(__file__).resolve().parents[2]


def eval_entry() -> list[str]:
    """``python -m detect eval`` once the verb is hooked into detect/cli.py, else the module's own entry."""
    from detect.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return ["-m", "detect", "eval"] if "eval" in sub.choices else ["-m", "detect.cli.evaluate", "eval"]


def run_cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *eval_entry(), *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def predictions(split: DatasetSplit, noise: float, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Ground truth moved by ``noise`` px (Gaussian), scores random; ``noise=0`` gives perfect detections."""
    rng = np.random.default_rng(seed)
    outputs = []
    for record in split.images:
        boxes = np.array([o.box for o in record.objects], dtype=np.float64).reshape(-1, 4)
        boxes = boxes + rng.normal(0, noise, boxes.shape)
        boxes = np.concatenate([np.minimum(boxes[:, :2], boxes[:, 2:]), np.maximum(boxes[:, :2], boxes[:, 2:])], 1)
        outputs.append({"boxes": torch.tensor(boxes), "scores": torch.tensor(rng.uniform(0.3, 1, len(boxes))),
                        "labels": torch.tensor([o.label for o in record.objects], dtype=torch.int64)})
    return outputs


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[DatasetSplit, Path]:
    root = tmp_path_factory.mktemp("eval")
    split = random_split(root / "src", num_images=6, seed=11, name="val")
    assert split.num_objects() >= 6
    return split, write_coco(split, root / "coco")


def test_cli_writes_everything_and_prints_ap(dataset, tmp_path: Path) -> None:
    split, gt = dataset
    results = write_coco_results(split, predictions(split, noise=1.5), tmp_path / "results.json")
    out = tmp_path / "eval"
    proc = run_cli(gt.parent.parent, "--predictions", results, "--out", out, "--examples", 4, "--compare-ultralytics")
    assert proc.returncode == 0, proc.stderr
    for name in OUTPUT_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    ap = metrics["coco"]["AP"]
    assert 0.0 < ap < 1.0
    assert f"AP {ap:.4f}  AP50 {metrics['coco']['AP50']:.4f}" in proc.stdout
    assert metrics["source"] == {"ground_truth": str(gt.parent.parent), "split": "val", "images": 6,
                                 "objects": split.num_objects(), "predictions": str(results), "model": None,
                                 "weights": None}
    assert metrics["class_names"] == split.class_names
    ultra = {row["metric"]: row for row in metrics["ultralytics"]["rows"]}
    assert ultra["mAP50-95"]["ours"] == ap
    assert ap - 0.02 <= ultra["mAP50-95"]["ultralytics"] <= ap + 0.01
    assert "ultralytics" in proc.stdout and "Interpolation" in proc.stdout
    md = (out / "metrics.md").read_text()
    assert "### COCO box metrics (pycocotools)" in md and "ours (pycocotools) vs ultralytics" in md


def test_cli_perfect_yolo_predictions_give_ap_1(dataset, tmp_path: Path) -> None:
    split, gt = dataset
    folder = write_yolo_predictions(split, predictions(split, noise=0.0), tmp_path / "labels")
    out = tmp_path / "eval"
    proc = run_cli(gt, "--predictions", folder, "--out", out, "--backend", "faster-coco-eval", "--examples", 2)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["backend"] == "faster-coco-eval"
    assert metrics["coco"]["AP"] == pytest.approx(1.0) and metrics["coco"]["AP50"] == pytest.approx(1.0)
    assert metrics["threshold"]["precision"] == 1.0 and metrics["threshold"]["recall"] == 1.0
    assert "AP 1.0000  AP50 1.0000" in proc.stdout


def test_cli_unknown_image_id_is_one_line_error(dataset, tmp_path: Path) -> None:
    _, gt = dataset
    results = tmp_path / "bad.json"
    good = {"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.9}
    results.write_text(json.dumps([good, {**good, "image_id": 4242}]))
    proc = run_cli(gt, "--predictions", results, "--out", tmp_path / "eval")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "detection [1]: image_id 4242 is not an image of the ground truth split 'val'" in lines[0]
    assert not (tmp_path / "eval" / "metrics.json").exists()


# ------------------------------------------------------------------- in-process: argument errors


def run_main(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str]:
    code = detect_main(["eval", *map(str, args)])
    return code, capsys.readouterr().err


def test_class_list_mismatch(dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, gt = dataset
    results = tmp_path / "r.json"
    results.write_text(json.dumps([{"image_id": 1, "category_id": 7, "bbox": [1, 1, 5, 5], "score": 0.9}]))
    code, err = run_main(capsys, gt, "--predictions", results, "--out", tmp_path / "e")
    assert code == 2
    assert "category_id 7 is not a category of the ground truth (known: 1=cat, 2=dog, 3=digit 7)" in err
    assert "different class list" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--weights", "w.pt"], "--weights and --image-size go with --model or --checkpoint, not with --predictions"),
        (["--image-size", "64"], "--weights and --image-size go with --model"),
        (["--batch-size", "0"], "batch size: expected a positive integer, got 0"),
        (["--examples", "-1"], "examples: expected 0 or more images, got -1"),
        (["--iou", "1.5"], "iou_threshold: expected an IoU threshold in (0, 1), got 1.5"),
    ],
)
def test_bad_options(dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str) -> None:
    split, gt = dataset
    results = write_coco_results(split, predictions(split, 1.0), tmp_path / "r.json")
    code, err = run_main(capsys, gt, "--predictions", results, "--out", tmp_path / "e", "--examples", "0", *extra)
    assert code == 2 and err.startswith("error: ") and message in err


def test_several_image_sizes_go_with_a_checkpoint(dataset, capsys: pytest.CaptureFixture[str]) -> None:
    _, gt = dataset
    code, err = run_main(capsys, gt, "--model", "yolov8n", "--image-size", "64", "48")
    assert code == 2 and "several image sizes ([64, 48]) go with --checkpoint" in err
    code, err = run_main(capsys, gt, "--checkpoint", "absent.pt", "--image-size", "64", "0")
    assert code == 2 and "image size: expected positive numbers of pixels, got [64, 0]" in err


def test_missing_inputs(dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    split, gt = dataset
    code, err = run_main(capsys, gt, "--predictions", tmp_path / "absent.json", "--out", tmp_path / "e")
    assert code == 2 and "predictions not found" in err
    code, err = run_main(capsys, tmp_path / "no_dataset", "--predictions", tmp_path / "x.json")
    assert code == 2 and "dataset not found" in err
    code, err = run_main(capsys, gt, "--split", "train", "--predictions", tmp_path / "x.json")
    assert code == 2 and "instances_val.json: no split 'train' in this coco dataset; it has ['val']" in err
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg", "width": 0, "height": 5}],
                                  "annotations": [], "categories": [{"id": 1, "name": "a"}]}))
    code, err = run_main(capsys, broken, "--predictions", tmp_path / "x.json")
    assert code == 1 and "1 problem(s) in the dataset" in err and "images[0]" in err


def test_source_is_required_and_exclusive(dataset, capsys: pytest.CaptureFixture[str]) -> None:
    _, gt = dataset
    for args in ([gt], [gt, "--predictions", "r.json", "--model", "yolov8n"]):
        with pytest.raises(SystemExit) as info:
            detect_main(["eval", *map(str, args)])
        assert info.value.code == 2
    assert "--model" in capsys.readouterr().err


# --------------------------------------------------------------------- in-process: --model path


class WholeImageDetector(nn.Module):
    """Predicts one class-0 box covering each whole image (the Detector contract, eval mode)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.class_names = [str(i) for i in range(num_classes)]
        self.anchor = nn.Parameter(torch.zeros(1))

    def forward(self, images: list[torch.Tensor], targets: list[dict] | None = None) -> list[dict[str, torch.Tensor]]:
        return [{"boxes": torch.tensor([[0.0, 0.0, im.shape[2], im.shape[1]]]), "scores": torch.tensor([0.8]),
                 "labels": torch.tensor([0])} for im in images]


@pytest.fixture
def whole_image_split(tmp_path: Path) -> Path:
    """A COCO dataset whose only object per image covers the whole image."""
    root = tmp_path / "src" / "images" / "val"
    root.mkdir(parents=True)
    records = []
    for i, (w, h) in enumerate([(40, 30), (32, 48), (50, 50)]):
        Image.fromarray(np.full((h, w, 3), 80 * i, dtype=np.uint8)).save(root / f"im{i}.png")
        records.append(ImageRecord(i + 1, f"im{i}.png", w, h, (ObjectAnnotation((0.0, 0.0, float(w), float(h)), 0),)))
    return write_coco(DatasetSplit(["blob", "other"], records, root, "val"), tmp_path / "coco")


def test_model_path_runs_the_registry_model(whole_image_split: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {}

    def fake_get_detector(name: str, **kwargs: object) -> nn.Module:
        calls.update(name=name, **kwargs)
        return WholeImageDetector(kwargs["num_classes"])

    monkeypatch.setattr("detect.models.registry.get_detector", fake_get_detector)
    report = run_evaluation(whole_image_split, model="fake", image_size=64, out_dir=tmp_path / "e", num_examples=3,
                            batch_size=2)
    assert calls == {"name": "fake", "num_classes": 2, "image_size": 64, "weights": None}
    assert report.coco.stats["AP"] == pytest.approx(1.0)
    assert report.threshold.totals()["tp"] == 3
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["source"]["model"] == "fake"
    assert all((tmp_path / "e" / name).is_file() for name in OUTPUT_FILES)


def test_model_with_other_class_count_is_refused(whole_image_split: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("detect.models.registry.get_detector", lambda name, **kw: WholeImageDetector(5))
    with pytest.raises(ValueError, match=r"model 'fake' predicts 5 classes \[0, 1, 2, 3, 4\], but the dataset has 2: \[blob, other\]"):
        run_evaluation(whole_image_split, model="fake", out_dir=tmp_path / "e")


def test_unusable_device_is_refused(whole_image_split: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("detect.models.registry.get_detector", lambda name, **kw: WholeImageDetector(2))
    with pytest.raises(ValueError, match="device: expected auto, cpu, cuda or cuda:N, got 'gpu0'"):
        run_evaluation(whole_image_split, model="fake", out_dir=tmp_path / "e", device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda' requested but CUDA is not available here"):
            run_evaluation(whole_image_split, model="fake", out_dir=tmp_path / "e", device="cuda")


def test_real_registry_model_runs(whole_image_split: Path, tmp_path: Path) -> None:
    """An untrained ultralytics peer from the registry, end to end (scores are meaningless, numbers valid)."""
    report = run_evaluation(whole_image_split, model="yolov8n", image_size=32, out_dir=tmp_path / "e", num_examples=1)
    assert 0.0 <= report.coco.stats["AP50"] <= 1.0
    assert report.confusion_matrix[:-1].sum() == 3  # every ground-truth box is accounted for
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["source"]["model"] == "yolov8n"
