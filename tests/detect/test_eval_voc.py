"""VOCEvaluator: parity with a plain brute-force devkit re-statement, hand-computed cases, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from detect.evaluation import VOCEvaluator, voc07_ap, voc12_ap

CLASSES = [f"c{k}" for k in range(8)]  # c7 never has ground truth in the random data


# --------------------------------------------------------------------------- brute force
def plain_iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def brute_force_class(targets: list[dict], outputs: list[dict], c: int, thr: float) -> tuple[float, float, int]:
    """The devkit's voc_eval for one class, written with loops only: (AP07, AP12, npos)."""
    gts, npos = {}, 0
    for t in targets:
        gts[t["image_id"]] = []
        for box, label, difficult in zip(t["boxes"].tolist(), t["labels"].tolist(), t["difficult"].tolist()):
            if label == c:
                gts[t["image_id"]].append({"box": box, "difficult": difficult, "used": False})
                npos += 0 if difficult else 1
    dets = []
    for t, o in zip(targets, outputs):
        for box, score, label in zip(o["boxes"].tolist(), o["scores"].tolist(), o["labels"].tolist()):
            if label == c:
                dets.append((score, t["image_id"], box))
    dets = sorted(dets, key=lambda d: -d[0])  # stable: ties keep image order, then detection order
    tp, fp = [], []
    for _, image_id, box in dets:
        best_iou, best = -1.0, None
        for g in gts[image_id]:
            iou = plain_iou(box, g["box"])
            if iou > best_iou:
                best_iou, best = iou, g
        if best is not None and best_iou > thr:
            if best["difficult"]:
                tp.append(0)
                fp.append(0)
            elif not best["used"]:
                best["used"] = True
                tp.append(1)
                fp.append(0)
            else:
                tp.append(0)
                fp.append(1)
        else:
            tp.append(0)
            fp.append(1)
    if npos == 0:
        return math.nan, math.nan, 0
    rec, prec, ctp, cfp = [], [], 0, 0
    for a, b in zip(tp, fp):
        ctp, cfp = ctp + a, cfp + b
        rec.append(ctp / npos)
        prec.append(ctp / max(ctp + cfp, np.finfo(np.float64).eps))
    ap07 = 0.0
    for i in range(11):
        level = 0.1 * i  # the devkit's np.arange(0, 1.1, 0.1) gives these very floats
        ap07 += max([p for r, p in zip(rec, prec) if r >= level], default=0.0) / 11
    mrec, mpre = [0.0, *rec, 1.0], [0.0, *prec, 0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    ap12 = sum((mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1) if mrec[i + 1] != mrec[i])
    return ap07, ap12, npos


# --------------------------------------------------------------------------- data
def make_dataset(seed: int, n_images: int = 200) -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(seed)
    targets, outputs = [], []
    for i in range(n_images):
        n_gt = 0 if rng.random() < 0.1 else int(rng.integers(1, 7))
        gt = []
        for _ in range(n_gt):
            w, h = rng.uniform(5, 200, 2)
            x, y = rng.uniform(0, 400, 2)
            gt.append([x, y, x + w, y + h])
        labels = rng.integers(0, len(CLASSES) - 1, n_gt)
        dets, det_labels = [], []
        if rng.random() > 0.08:
            for box, label in zip(gt, labels):
                for _ in range(int(rng.integers(0, 3))):
                    size = np.array([box[2] - box[0], box[3] - box[1]] * 2)
                    d = np.array(box) + rng.normal(0, 0.07, 4) * size
                    dets.append([d[0], d[1], max(d[2], d[0] + 1), max(d[3], d[1] + 1)])
                    det_labels.append(label if rng.random() < 0.85 else rng.integers(0, len(CLASSES)))
            for _ in range(int(rng.integers(0, 4))):
                x, y, w, h = rng.uniform(0, 300), rng.uniform(0, 300), rng.uniform(5, 150), rng.uniform(5, 150)
                dets.append([x, y, x + w, y + h])
                det_labels.append(rng.integers(0, len(CLASSES)))
        scores = rng.random(len(dets))
        if i % 3 == 0:
            scores = np.round(scores * 10) / 10  # many exact ties
        targets.append({
            "image_id": i,
            "boxes": torch.tensor(gt, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "difficult": torch.tensor(rng.random(n_gt) < 0.15),
        })
        outputs.append({
            "boxes": torch.tensor(dets, dtype=torch.float32).reshape(-1, 4),
            "scores": torch.tensor(scores, dtype=torch.float32),
            "labels": torch.tensor(np.array(det_labels, dtype=np.int64)),
        })
    return targets, outputs


def run(targets: list[dict], outputs: list[dict], class_names: list[str] = CLASSES, **kwargs) -> VOCEvaluator:
    ev = VOCEvaluator(class_names, **kwargs)
    for s in range(0, len(targets), 32):
        ev.process(targets[s : s + 32], outputs[s : s + 32])
    return ev


@pytest.fixture(scope="module")
def dataset() -> tuple[list[dict], list[dict]]:
    return make_dataset(seed=1)


# --------------------------------------------------------------------------- parity
@pytest.mark.parametrize("thr", [0.5, 0.75])
def test_matches_brute_force_devkit(dataset, thr) -> None:
    targets, outputs = dataset
    result = run(targets, outputs, iou_thresholds=(0.5, 0.75)).evaluate()
    name = f"AP{round(thr * 100)}"
    ref = [brute_force_class(targets, outputs, c, thr) for c in range(len(CLASSES))]
    for c, (ap07, ap12, npos) in enumerate(ref[:-1]):
        row = result["per_class"][CLASSES[c]]
        assert row[f"VOC07_{name}"] == pytest.approx(ap07, abs=1e-12)
        assert row[f"VOC12_{name}"] == pytest.approx(ap12, abs=1e-12)
        assert row[f"AP@{thr:g}"] == row[f"VOC12_{name}"]
        assert row["num_gt"] == npos > 0
    assert math.isnan(ref[-1][0]) and math.isnan(result["per_class"]["c7"][f"VOC12_{name}"])
    assert result[f"VOC07_{name}"] == pytest.approx(np.mean([r[0] for r in ref[:-1]]), abs=1e-12)
    assert result[f"VOC12_{name}"] == pytest.approx(np.mean([r[1] for r in ref[:-1]]), abs=1e-12)
    assert 0.1 < result[f"VOC12_{name}"] < 0.95


def test_dataset_covers_the_edge_cases(dataset) -> None:
    targets, outputs = dataset
    assert sum(int(t["difficult"].sum()) for t in targets) > 50
    assert sum(len(t["labels"]) == 0 for t in targets) >= 5
    assert sum(len(o["labels"]) == 0 for o in outputs) >= 5
    scores = torch.cat([o["scores"] for o in outputs])
    assert len(scores.unique()) < len(scores) - 100  # ties


def test_07_metric_selects_primary(dataset) -> None:
    r07 = run(*dataset, use_07_metric=True).evaluate()
    r12 = run(*dataset).evaluate()
    assert r07["AP@0.5"] == r07["VOC07_AP50"] == r12["VOC07_AP50"]
    assert r12["AP@0.5"] == r12["VOC12_AP50"] != r07["AP@0.5"]


def test_perfect_predictions_score_one(dataset) -> None:
    targets, _ = dataset
    outputs = [{"boxes": t["boxes"], "scores": torch.rand(len(t["labels"])), "labels": t["labels"]} for t in targets]
    result = run(targets, outputs).evaluate()
    assert result["VOC07_AP50"] == pytest.approx(1.0, abs=1e-12)
    assert result["VOC12_AP50"] == pytest.approx(1.0, abs=1e-12)


# --------------------------------------------------------------------------- hand-computed
def one_image(gt: list[list[float]], dets: list[list[float]], difficult: list[bool] | None = None) -> tuple[list, list]:
    n = len(gt)
    targets = [{
        "image_id": 1,
        "boxes": torch.tensor(gt).reshape(-1, 4),
        "labels": torch.zeros(n, dtype=torch.int64),
        "difficult": torch.tensor(difficult or [False] * n),
    }]
    scores = torch.linspace(0.9, 0.1, len(dets))
    outputs = [{"boxes": torch.tensor(dets).reshape(-1, 4), "scores": scores, "labels": torch.zeros(len(dets), dtype=torch.int64)}]
    return targets, outputs


def test_hand_computed_tp_fp_tp() -> None:
    # 2 GT, detections by score: TP, FP, TP.  recall 1/2, 1/2, 1; precision 1, 1/2, 2/3.
    # 11-point: levels 0..0.5 (6 of them) see max precision 1, levels 0.6..1 (5) see 2/3:
    #   (6 * 1 + 5 * 2/3) / 11 = 28/33.
    # all-point: envelope 1 on (0, 0.5], 2/3 on (0.5, 1]:  0.5 * 1 + 0.5 * 2/3 = 5/6.
    targets, outputs = one_image([[0, 0, 10, 10], [20, 20, 30, 30]], [[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]])
    result = run(targets, outputs, class_names=["a"]).compute()
    assert result.mean_ap(0.5, use_07_metric=True) == pytest.approx(28 / 33, abs=1e-12)
    assert result.mean_ap(0.5, use_07_metric=False) == pytest.approx(5 / 6, abs=1e-12)
    curve = result.classes[0.5][0]
    np.testing.assert_allclose(curve.recall, [0.5, 0.5, 1.0])
    np.testing.assert_allclose(curve.precision, [1.0, 0.5, 2 / 3])
    assert (curve.num_gt, curve.num_det) == (2, 3)


def test_duplicate_on_best_gt_is_fp_even_if_another_gt_overlaps() -> None:
    # det2's highest-IoU box is A (IoU 1), already taken by det1, so det2 is a FP although B
    # (IoU 100/120) is free: the devkit does not fall back to the next box.
    # recall 1/2, 1/2; precision 1, 1/2 -> all-point 1/2; 11-point 6/11 (levels 0..0.5).
    targets, outputs = one_image([[0, 0, 10, 10], [0, 0, 10, 12]], [[0, 0, 10, 10], [0, 0, 10, 10]])
    result = run(targets, outputs, class_names=["a"]).evaluate()
    assert result["VOC12_AP50"] == pytest.approx(0.5, abs=1e-12)
    assert result["VOC07_AP50"] == pytest.approx(6 / 11, abs=1e-12)


def test_difficult_is_neither_tp_nor_fp() -> None:
    # GT0 difficult, GT1 normal; dets: on GT0 (ignored), on GT1 (TP), duplicate on GT1 (FP).
    # npos 1; counted: TP, FP -> recall 1, 1; precision 1, 1/2 -> AP 1 both ways.
    targets, outputs = one_image(
        [[0, 0, 10, 10], [20, 20, 30, 30]], [[0, 0, 10, 10], [20, 20, 30, 30], [20, 20, 30, 30]], difficult=[True, False]
    )
    result = run(targets, outputs, class_names=["a"]).compute()
    assert result.mean_ap(0.5) == pytest.approx(1.0, abs=1e-12)
    assert result.classes[0.5][0].num_gt == 1 and result.classes[0.5][0].num_det == 2


def test_iou_must_exceed_threshold_strictly() -> None:
    # IoU exactly 100/200 = 0.5 is not > 0.5: a FP, AP 0.  At threshold 0.45 it is a TP.
    targets, outputs = one_image([[0, 0, 10, 10]], [[0, 0, 10, 20]])
    result = run(targets, outputs, class_names=["a"], iou_thresholds=(0.45, 0.5)).evaluate()
    assert result["VOC12_AP50"] == 0.0 and result["VOC12_AP45"] == 1.0


def test_class_without_gt_is_nan_and_excluded() -> None:
    targets, outputs = one_image([[0, 0, 10, 10]], [[0, 0, 10, 10]])
    outputs[0]["labels"] = torch.tensor([1])  # only a detection of class b, which has no GT
    result = run(targets, outputs, class_names=["a", "b"]).evaluate()
    assert result["VOC12_AP50"] == 0.0  # mean over class a only
    assert result["per_class"]["a"]["AP@0.5"] == 0.0
    assert math.isnan(result["per_class"]["b"]["AP@0.5"]) and result["per_class"]["b"]["num_gt"] == 0
    only_difficult, _ = one_image([[0, 0, 10, 10]], [], difficult=[True])
    empty = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}]
    assert math.isnan(run(only_difficult, empty, class_names=["a"]).evaluate()["VOC12_AP50"])


def test_ap_functions_directly() -> None:
    # recall of exactly 0.3 does not reach the devkit's 11-point level 0.30000000000000004
    assert voc07_ap(np.array([0.3]), np.array([1.0])) == pytest.approx(3 / 11)
    assert voc12_ap(np.array([0.3]), np.array([1.0])) == pytest.approx(0.3)
    assert voc07_ap(np.array([]), np.array([])) == 0.0 and voc12_ap(np.array([]), np.array([])) == 0.0
    # the envelope lifts the dip: precision 1, 0.5, 1 at recall 1/3, 1/3, 2/3 -> area 2/3
    assert voc12_ap(np.array([1 / 3, 1 / 3, 2 / 3]), np.array([1.0, 0.5, 2 / 3 * 1.5])) == pytest.approx(2 / 3)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"iou_thresholds": (0.0,)}, r"iou_thresholds: expected an IoU threshold in \(0, 1\), got 0.0"),
        ({"iou_thresholds": (0.5, 1.2)}, r"got 1.2"),
        ({"iou_thresholds": (0.5, 0.501)}, "expected distinct thresholds"),
        ({"iou_thresholds": ()}, "expected distinct thresholds"),
        ({"class_names": []}, "class_names: expected a non-empty list"),
    ],
)
def test_bad_constructor_arguments(kwargs, match) -> None:
    kwargs = {"class_names": ["a"], **kwargs}
    with pytest.raises(ValueError, match=match):
        VOCEvaluator(**kwargs)


def test_bad_inputs() -> None:
    targets, outputs = one_image([[0, 0, 10, 10]], [[0, 0, 10, 10]])
    ev = VOCEvaluator(["a"])
    bad = [dict(outputs[0], labels=torch.tensor([1]))]
    with pytest.raises(ValueError, match=r"outputs\[0\] \(image_id=1\) output labels\[0\]: label 1 out of range \[0, 1\)"):
        ev.process(targets, bad)
    bad = [dict(targets[0], difficult=torch.tensor([True, False]))]
    with pytest.raises(ValueError, match=r"image_id=1\) target difficult: expected shape \[1\]"):
        ev.process(bad, outputs)
    bad = [dict(targets[0], boxes=torch.tensor([[0.0, float("-inf"), 10, 10]]))]
    with pytest.raises(ValueError, match=r"image_id=1\) target boxes\[0\]: box is not finite"):
        ev.process(bad, outputs)
    with pytest.raises(ValueError, match="no images were processed"):
        ev.evaluate()
    ev.process(targets, outputs)
    with pytest.raises(ValueError, match="image_id=1 was already processed"):
        ev.process(targets, outputs)
    assert ev.evaluate()["VOC12_AP50"] == 1.0
