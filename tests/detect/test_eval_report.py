"""DetectionMetrics (P/R/F1, confusion matrix) on a hand-built case, and EvaluationReport rendering."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch
from rich.console import Console

from detect.box_ops import box_iou
from detect.evaluation import (
    COCOEvaluator,
    DetectionMetrics,
    EvaluationReport,
    VOCEvaluator,
    evaluate_all,
)

NAMES = ["cat", "dog"]


def hand_case() -> tuple[list[dict], list[dict]]:
    """Two images whose matching is worked out in the comments (score threshold 0.25, IoU 0.5)."""
    targets = [
        {
            "image_id": 1,
            # A cat, B dog, C dog (its only detection is below the threshold), D a crowd of cats
            "boxes": torch.tensor([[0.0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [100, 100, 200, 200]]),
            "labels": torch.tensor([0, 1, 1, 0]),
            "iscrowd": torch.tensor([False, False, False, True]),
        },
        {
            "image_id": 2,
            # a difficult dog and a cat
            "boxes": torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60]]),
            "labels": torch.tensor([1, 0]),
            "difficult": torch.tensor([True, False]),
        },
    ]
    outputs = [
        {
            "boxes": torch.tensor([
                [0.0, 0, 10, 10],  # 0.9 cat on A: TP
                [20, 0, 30, 10],  # 0.8 cat on dog B: confusion (true dog, predicted cat)
                [60, 60, 70, 70],  # 0.7 dog on nothing: false alarm (true background)
                [0, 0, 10, 10],  # 0.6 cat, duplicate on A: false alarm
                [110, 110, 120, 120],  # 0.5 cat inside the crowd D (IoA 1): ignored
                [40, 0, 50, 10],  # 0.1 dog on C, below the threshold: C is a miss
            ]),
            "scores": torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.1]),
            "labels": torch.tensor([0, 0, 1, 0, 0, 1]),
        },
        {
            "boxes": torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 65]]),  # dog on the difficult dog: ignored;
            "scores": torch.tensor([0.9, 0.95]),  # cat with IoU 100/150: TP
            "labels": torch.tensor([1, 0]),
        },
    ]
    return targets, outputs


# rows true (cat, dog, background), columns predicted (cat, dog, background)
EXPECTED_MATRIX = [[2, 0, 0], [1, 0, 1], [1, 1, 0]]


def test_box_iou_known_values() -> None:
    a = np.array([[0.0, 0, 10, 10], [0, 0, 0, 0]])
    b = np.array([[0.0, 0, 10, 20], [5, 5, 15, 15], [20, 20, 30, 30]])
    np.testing.assert_allclose(box_iou(a, b), [[0.5, 25 / 175, 0.0], [0.0, 0.0, 0.0]])


def test_confusion_matrix_and_counts() -> None:
    metrics = DetectionMetrics(NAMES, score_threshold=0.25, iou_threshold=0.5)
    metrics.process(*hand_case())
    m = metrics.compute()
    assert m.confusion_matrix.tolist() == EXPECTED_MATRIX
    assert m.tp.tolist() == [2, 0] and m.fp.tolist() == [2, 1] and m.fn.tolist() == [0, 2]
    assert m.false_alarms.tolist() == [1, 0, 1]  # the duplicate cat on A, the dog on nothing
    np.testing.assert_allclose(m.precision, [0.5, 0.0])
    np.testing.assert_allclose(m.recall, [1.0, 0.0])
    np.testing.assert_allclose(m.f1, [2 / 3, 0.0])  # F1 = 2PR/(P+R); 0 when P = R = 0
    totals = m.totals()  # TP 2, FP 3, FN 2: P 2/5, R 1/2, F1 2*(1/5)/(9/10) = 4/9
    assert (totals["tp"], totals["fp"], totals["fn"]) == (2, 3, 2)
    assert totals["precision"] == pytest.approx(0.4) and totals["recall"] == pytest.approx(0.5)
    assert totals["f1"] == pytest.approx(4 / 9)


def test_lower_score_threshold_recovers_the_miss() -> None:
    metrics = DetectionMetrics(NAMES, score_threshold=0.05)
    metrics.process(*hand_case())
    assert metrics.compute().confusion_matrix.tolist() == [[2, 0, 0], [1, 1, 0], [1, 1, 0]]


def test_false_alarms_by_kind() -> None:
    targets = [{"image_id": 1, "boxes": torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60]]),
                "labels": torch.tensor([0, 1]), "iscrowd": torch.tensor([False, True])}]
    outputs = [{
        "boxes": torch.tensor([
            [0.0, 0, 10, 10],  # cat on the cat: TP
            [0, 0, 10, 10],  # dog on the cat already found: duplicate of the other class
            [1, 0, 11, 10],  # cat at IoU 90/110 with the found cat: duplicate
            [5, 0, 15, 10],  # cat at IoU 50/150 = 0.33: poor localisation
            [9, 0, 19, 10],  # cat at IoU 10/190 < 0.1: background
            [52, 52, 58, 58],  # cat near the dog crowd only: background (crowds are not counted)
            [50, 50, 60, 60],  # dog inside the dog crowd: ignored, no false alarm
        ]),
        "scores": torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]),
        "labels": torch.tensor([0, 1, 0, 0, 0, 0, 1]),
    }]
    metrics = DetectionMetrics(NAMES, score_threshold=0.25, iou_threshold=0.5)
    metrics.process(targets, outputs)
    m = metrics.compute()
    assert m.confusion_matrix[2].tolist() == [4, 1, 0]  # five false alarms in the background row
    assert m.false_alarms.tolist() == [2, 1, 2]
    assert m.to_dict()["false_alarms"] == {"duplicate": 2, "poor localisation": 1, "background": 2}


def test_undefined_rates_are_nan() -> None:
    targets = [{"image_id": 1, "boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([0])}]
    outputs = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}]
    metrics = DetectionMetrics(NAMES)
    metrics.process(targets, outputs)
    m = metrics.compute()
    assert m.confusion_matrix.tolist() == [[0, 0, 1], [0, 0, 0], [0, 0, 0]]
    assert math.isnan(m.precision[0]) and m.recall[0] == 0.0 and math.isnan(m.f1[0])
    assert all(math.isnan(v) for v in (m.precision[1], m.recall[1], m.f1[1]))
    assert metrics.evaluate()["per_class"]["dog"] == {"precision": None, "recall": None, "f1": None, "tp": 0, "fp": 0, "fn": 0}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"iou_threshold": 1.0}, ValueError, r"iou_threshold: expected an IoU threshold in \(0, 1\), got 1.0"),
        ({"score_threshold": "high"}, TypeError, "score_threshold: expected a float, got str"),
        ({"score_threshold": float("nan")}, ValueError, "score_threshold: expected a finite float"),
    ],
)
def test_detection_metrics_bad_arguments(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        DetectionMetrics(NAMES, **kwargs)


@pytest.fixture(scope="module")
def report() -> EvaluationReport:
    return evaluate_all(NAMES, *hand_case(), score_threshold=0.25, iou=0.5)


def test_report_agrees_with_each_evaluator(report) -> None:
    targets, outputs = hand_case()
    coco, voc = COCOEvaluator(NAMES), VOCEvaluator(NAMES)
    coco.process(targets, outputs)
    voc.process(targets, outputs)
    assert report.coco.to_dict() == coco.evaluate()
    assert report.voc.to_json_dict() == voc.compute().to_json_dict()
    assert report.confusion_matrix.tolist() == EXPECTED_MATRIX
    fast = evaluate_all(NAMES, targets, outputs, backend="faster-coco-eval")
    assert list(fast.coco.stats.values()) == pytest.approx(list(report.coco.stats.values()), abs=1e-9)


def test_report_known_values(report) -> None:
    # VOC, cat: npos 2 (A and image 2's cat; the crowd D is ignored). Detections by score:
    # 0.95 TP, 0.9 TP, 0.8 FP (on dog B), 0.6 FP (duplicate), 0.5 ignored (crowd) -> AP 1.
    # dog: npos 2 (B, C). 0.9 on the difficult dog is ignored, 0.7 FP, 0.1 TP on C:
    # recall 0, 1/2; precision 0, 1/2 -> all-point AP 1/2 * 1/2 = 1/4.
    voc = report.voc.to_dict()
    assert voc["per_class"]["cat"]["AP@0.5"] == pytest.approx(1.0)
    assert voc["per_class"]["dog"]["AP@0.5"] == pytest.approx(0.25)
    assert voc["VOC12_AP50"] == pytest.approx(0.625)
    rec, prec = report.voc_pr_curves()["dog"]
    np.testing.assert_allclose(rec, [0.0, 0.5])
    np.testing.assert_allclose(prec, [0.0, 0.5])
    rows = {r["class"]: r for r in report.per_class_rows()}
    assert rows["cat"]["GT"] == 2 and rows["cat"]["TP"] == 2 and rows["cat"]["FP"] == 2 and rows["cat"]["P"] == 0.5
    assert rows["dog"]["FN"] == 2 and rows["dog"]["VOC_AP50"] == pytest.approx(0.25)
    recall_thrs, coco_pr = report.coco_pr_curves(0.5)
    assert recall_thrs.shape == (101,) and coco_pr.shape == (2, 101)
    np.testing.assert_array_equal(coco_pr, report.coco.precision[0, :, :, 0, -1].T)


def test_to_json_round_trip(report, tmp_path) -> None:
    path = report.to_json(tmp_path / "sub" / "report.json")
    data = json.loads(path.read_text())
    assert data["class_names"] == NAMES
    assert data["coco"]["AP"] == pytest.approx(report.coco.stats["AP"], abs=1e-15)
    assert data["voc"]["per_class"]["dog"]["AP@0.5"] == pytest.approx(0.25)
    assert data["threshold"]["confusion_matrix"] == EXPECTED_MATRIX
    assert data["threshold"]["per_class"]["cat"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "tp": 2, "fp": 2, "fn": 0}
    assert len(data["curves"]["coco_precision_iou50"]) == 2 and len(data["curves"]["coco_recall_thresholds"]) == 101
    assert data["curves"]["voc"]["dog"] == {"recall": [0.0, 0.5], "precision": [0.0, 0.5]}


def test_json_has_no_nan_when_a_class_has_no_gt(tmp_path) -> None:
    targets = [{"image_id": 1, "boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([0])}]
    outputs = [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "scores": torch.tensor([0.9]), "labels": torch.tensor([0])}]
    rep = evaluate_all(NAMES, targets, outputs)
    data = json.loads(rep.to_json(tmp_path / "r.json").read_text())  # allow_nan=False would raise
    assert data["voc"]["per_class"]["dog"]["AP@0.5"] is None and data["coco"]["per_class_AP"]["dog"] == -1.0
    assert data["per_class"][1]["R"] is None and data["curves"]["voc"]["dog"] == {"recall": [], "precision": []}


def test_to_markdown(report) -> None:
    md = report.to_markdown()
    assert "| AP | AP50 | AP75 | APs | APm | APl | AR1 | AR10 | AR100 | ARs | ARm | ARl |" in md
    assert "| VOC07_AP50 | VOC12_AP50 | AP@0.5 |" in md
    assert "| class | GT | AP | AP50 | VOC_AP50 | P | R | F1 | TP | FP | FN |" in md
    ap, ap50 = report.coco.per_class_AP["cat"], report.coco.per_class_AP50["cat"]
    assert f"| cat | 2 | {ap:.3f} | {ap50:.3f} | 1.000 | 0.500 | 1.000 | 0.667 | 2 | 2 | 0 |" in md
    assert "| true \\ pred | cat | dog | background |" in md
    assert "| dog | 1 | 0 | 1 |" in md and "| background | 1 | 1 | 0 |" in md
    assert "by kind: duplicate 1, poor localisation 0, background 1 (" in md


def test_print_table(report) -> None:
    console = Console(file=io.StringIO(), width=160, record=True)
    report.print_table(console)
    text = console.export_text()
    assert "Per class" in text and "background" in text and "VOC12_AP50" in text
    assert "duplicate 1, poor localisation 0, background 1" in text
    assert f"{report.coco.stats['AP']:.3f}" in text and "0.625" in text
