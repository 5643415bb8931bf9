"""ultralytics' metrics on our detections: known values, an independent computation, the documented bound."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from detect.evaluation.report import evaluate_all
from detect.evaluation.ultralytics_compare import (
    EXPLANATION,
    compare_with_ultralytics,
    difference_causes,
    ultralytics_metrics,
)

NAMES = ["a", "b", "c"]


def target(image_id: int, boxes: list, labels: list, iscrowd: list | None = None) -> dict:
    t = {"image_id": image_id, "boxes": torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4),
         "labels": torch.tensor(labels, dtype=torch.int64)}
    if iscrowd is not None:
        t["iscrowd"] = torch.tensor(iscrowd, dtype=torch.bool)
    return t


def output(boxes: list, scores: list, labels: list) -> dict:
    return {"boxes": torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4),
            "scores": torch.tensor(scores, dtype=torch.float64), "labels": torch.tensor(labels, dtype=torch.int64)}


def random_case(seed: int, num_images: int = 10) -> tuple[list[dict], list[dict]]:
    """Boxes with noisy copies as detections, some with the wrong class, some pure false alarms."""
    rng = np.random.default_rng(seed)
    targets, outputs = [], []
    for i in range(num_images):
        n = int(rng.integers(0, 6))
        xy = rng.uniform(0, 80, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(5, 40, (n, 2))], 1)
        labels = rng.integers(0, 3, n)
        targets.append(target(i + 1, boxes.tolist(), labels.tolist()))
        m = int(rng.integers(0, 8))
        src = rng.integers(0, max(n, 1), m)
        det = (boxes[src] if n else rng.uniform(0, 80, (m, 4))) + rng.normal(0, 4, (m, 4))
        det = np.concatenate([np.minimum(det[:, :2], det[:, 2:]), np.maximum(det[:, :2], det[:, 2:])], 1)
        wrong = rng.uniform(size=m) < 0.2
        det_labels = np.where(wrong | (n == 0), rng.integers(0, 3, m), labels[src] if n else 0)
        outputs.append(output(det.tolist(), rng.uniform(0.01, 1, m).tolist(), det_labels.tolist()))
    return targets, outputs


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def independent_map(targets: list[dict], outputs: list[dict], iou_threshold: float) -> float:
    """ultralytics' documented AP, written from scratch: greedy matching by score, envelope with
    the sentinels (0, 1) and (1, 0), linear interpolation at 101 recall points, trapezoid rule."""
    hits: dict[int, list[tuple[float, bool]]] = {k: [] for k in range(len(NAMES))}
    n_gt = np.zeros(len(NAMES), dtype=int)
    for t, o in zip(targets, outputs):
        gt_boxes, gt_labels = t["boxes"].numpy(), t["labels"].numpy()
        n_gt += np.bincount(gt_labels, minlength=len(NAMES))
        scores, labels, boxes = o["scores"].numpy(), o["labels"].numpy(), o["boxes"].numpy()
        iou = iou_matrix(boxes, gt_boxes) if len(gt_boxes) and len(boxes) else np.zeros((len(boxes), len(gt_boxes)))
        free = np.ones(len(gt_boxes), dtype=bool)
        for d in np.argsort(-scores, kind="stable"):
            ok = free & (gt_labels == labels[d]) & (iou[d] >= iou_threshold)
            g = int(np.argmax(np.where(ok, iou[d], -1))) if ok.any() else -1
            if g >= 0:
                free[g] = False
            hits[int(labels[d])].append((float(scores[d]), g >= 0))
    aps = []
    for k in np.flatnonzero(n_gt):
        rows = sorted(hits[k], key=lambda r: -r[0])
        if not rows:
            aps.append(0.0)
            continue
        tp = np.cumsum([hit for _, hit in rows])
        fp = np.cumsum([not hit for _, hit in rows])
        recall, precision = tp / n_gt[k], tp / (tp + fp)
        mrec = np.concatenate(([0.0], recall, [recall[-1], 1.0]))
        mpre = np.maximum.accumulate(np.concatenate(([1.0], precision, [0.0, 0.0]))[::-1])[::-1]
        x = np.linspace(0, 1, 101)
        y = np.interp(x, mrec, mpre)
        aps.append(float(((y[1:] + y[:-1]) / 2 * np.diff(x)).sum()))
    return float(np.mean(aps))


def test_perfect_predictions_coco_1_ultralytics_0995() -> None:
    targets = [target(1, [[0, 0, 10, 10], [20, 20, 50, 40]], [0, 1]), target(2, [[5, 5, 30, 30]], [2])]
    outputs = [output(t["boxes"].tolist(), [0.9] * len(t["labels"]), t["labels"].tolist()) for t in targets]
    report = evaluate_all(NAMES, targets, outputs)
    theirs = ultralytics_metrics(NAMES, targets, outputs)
    assert report.coco.stats["AP"] == pytest.approx(1.0) and report.coco.stats["AP50"] == pytest.approx(1.0)
    # ultralytics integrates to the (1, 0) end point: the best possible AP is 0.995
    assert theirs.map50 == pytest.approx(0.995, abs=1e-12) and theirs.map == pytest.approx(0.995, abs=1e-12)
    assert theirs.precision == pytest.approx(1.0, abs=1e-6) and theirs.recall == pytest.approx(1.0, abs=1e-6)
    assert theirs.per_class_ap50 == pytest.approx({"a": 0.995, "b": 0.995, "c": 0.995})
    assert theirs.num_targets == 3 and theirs.num_detections == 3


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_random_case_matches_independent_computation_and_bound(seed: int) -> None:
    targets, outputs = random_case(seed)
    report = evaluate_all(NAMES, targets, outputs)
    theirs = ultralytics_metrics(NAMES, targets, outputs)
    assert theirs.map50 == pytest.approx(independent_map(targets, outputs, 0.5), abs=1e-9)
    assert theirs.map75 == pytest.approx(independent_map(targets, outputs, 0.75), abs=1e-9)
    thresholds = np.linspace(0.5, 0.95, 10)
    assert theirs.map == pytest.approx(np.mean([independent_map(targets, outputs, t) for t in thresholds]), abs=1e-9)
    ours = report.coco.stats
    for value in (ours["AP"], ours["AP50"], theirs.map, theirs.map50, theirs.precision, theirs.recall):
        assert 0.0 <= value <= 1.0
    # same matches -> interpolation alone: COCO - 0.02 <= ultralytics <= COCO + 0.01 (module docstring)
    for name, ap50 in theirs.per_class_ap50.items():
        assert report.coco.per_class_AP50[name] - 0.02 <= ap50 <= report.coco.per_class_AP50[name] + 0.01
        assert report.coco.per_class_AP[name] - 0.02 <= theirs.per_class_ap[name] <= report.coco.per_class_AP[name] + 0.01
    assert ours["AP50"] - 0.02 <= theirs.map50 <= ours["AP50"] + 0.01
    assert theirs.map50 != ours["AP50"]  # they do differ


def test_crowd_region_is_ignored_by_coco_but_a_target_for_ultralytics() -> None:
    targets = [target(1, [[0, 0, 10, 10], [40, 40, 90, 90]], [0, 0], iscrowd=[False, True])]
    outputs = [output([[0, 0, 10, 10]], [0.9], [0])]
    report = evaluate_all(NAMES, targets, outputs)
    theirs = ultralytics_metrics(NAMES, targets, outputs)
    assert report.coco.stats["AP50"] == pytest.approx(1.0)
    # ultralytics: recall stops at 1/2 -> precision 1 on [0, 0.5], then 0: trapezoid = 0.5 - 0.005
    assert theirs.map50 == pytest.approx(0.495, abs=1e-12)
    assert theirs.num_targets == 2
    assert difference_causes(targets, outputs, 3)["crowd_targets"] == 1


def test_coco_keeps_100_detections_per_class_ultralytics_300_per_image() -> None:
    gt = [50, 50, 60, 60]
    far = [[0, 0, 5, 5]] * 150
    targets = [target(1, [gt], [0])]
    scores = list(np.linspace(0.99, 0.5, 150)) + [0.1]  # the one true positive ranks 151st
    outputs = [output(far + [gt], scores, [0] * 151)]
    report = evaluate_all(NAMES, targets, outputs)
    theirs = ultralytics_metrics(NAMES, targets, outputs)
    assert report.coco.stats["AP50"] == pytest.approx(0.0)  # cut at 100
    # ultralytics keeps it: precision 1/151 at recall 1 -> 100 points of 1/151 + half of the last
    assert theirs.map50 == pytest.approx((1 / 151) * 0.995, abs=1e-9)
    causes = difference_causes(targets, outputs, 3)
    assert causes["coco_dropped_over_100_per_class"] == 51 and causes["ultralytics_dropped_over_max_det"] == 0
    assert ultralytics_metrics(NAMES, targets, outputs, max_det=150).map50 == pytest.approx(0.0)


def test_ultralytics_drops_scores_below_its_conf() -> None:
    targets = [target(1, [[0, 0, 10, 10]], [1])]
    outputs = [output([[0, 0, 10, 10]], [0.0005], [1])]
    assert evaluate_all(NAMES, targets, outputs).coco.stats["AP50"] == pytest.approx(1.0)
    assert ultralytics_metrics(NAMES, targets, outputs).map50 == 0.0
    assert ultralytics_metrics(NAMES, targets, outputs, conf=0.0).map50 == pytest.approx(0.995)
    assert difference_causes(targets, outputs, 3)["ultralytics_dropped_low_conf"] == 1


def test_comparison_rows_and_renderings() -> None:
    targets, outputs = random_case(7)
    report = evaluate_all(NAMES, targets, outputs, score_threshold=0.3)
    comparison = compare_with_ultralytics(report, targets, outputs)
    rows = {m: (a, b) for m, a, b in comparison.rows()}
    assert rows["mAP50-95"] == (report.coco.stats["AP"], comparison.ultralytics.map)
    assert rows["mAP50"] == (report.coco.stats["AP50"], comparison.ultralytics.map50)
    assert rows["precision"][0] == report.threshold.totals()["precision"]
    assert rows["AP50 a"] == (report.coco.per_class_AP50["a"], comparison.ultralytics.per_class_ap50["a"])
    data = comparison.to_dict()
    assert data["rows"][1]["difference"] == pytest.approx(comparison.ultralytics.map50 - report.coco.stats["AP50"])
    assert set(data["causes"]) == {"crowd_targets", "difficult_targets", "coco_dropped_over_100_per_class",
                                   "ultralytics_dropped_low_conf", "ultralytics_dropped_over_max_det"}
    md = comparison.to_markdown()
    assert f"| mAP50 | {report.coco.stats['AP50']:.4f} | {comparison.ultralytics.map50:.4f} |" in md
    for word in ("Interpolation", "iscrowd", "100 best", "300 best", "APs/APm/APl", "--score-threshold"):
        assert word in EXPLANATION and word in md


def test_undefined_values_render_as_none_and_dash() -> None:
    """No detection above --score-threshold: our precision is undefined (NaN), never NaN in JSON."""
    targets = [target(1, [[0, 0, 10, 10]], [0])]
    outputs = [output([[0, 0, 10, 10]], [0.1], [0])]
    comparison = compare_with_ultralytics(evaluate_all(NAMES, targets, outputs, score_threshold=0.5), targets, outputs)
    row = next(r for r in comparison.to_dict()["rows"] if r["metric"] == "precision")
    assert row["ours"] is None and row["difference"] is None and row["ultralytics"] == pytest.approx(1.0, abs=1e-6)
    json.dumps(comparison.to_dict(), allow_nan=False)
    assert "| precision | - | 1.0000 | - |" in comparison.to_markdown()


def test_bad_input() -> None:
    targets, outputs = random_case(0, num_images=3)
    with pytest.raises(ValueError, match="expected one output per target, got 3 targets and 2 outputs"):
        ultralytics_metrics(NAMES, targets, outputs[:2])
    with pytest.raises(ValueError, match=r"label 3 out of range \[0, 3\)"):
        ultralytics_metrics(NAMES, [target(1, [[0, 0, 1, 1]], [0])], [output([[0, 0, 1, 1]], [0.5], [3])])
    with pytest.raises(ValueError, match="no images were processed"):
        ultralytics_metrics(NAMES, [], [])
