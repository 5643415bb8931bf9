"""COCOEvaluator: parity with a direct pycocotools run, backend parity, known values, bad input."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detect.data.coco import coco_dict
from detect.data.dataset import target_from_record
from detect.data.formats import load_split, read_split
from detect.evaluation import COCOEvaluator
from detect.evaluation.results_io import read_results

CLASSES = [f"c{k}" for k in range(8)]
STAT_KEYS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


def random_box(rng: np.random.Generator, width: int, height: int) -> list[float]:
    """A box whose side spans 3..400 px (log-uniform), so small, medium and large all occur."""
    w, h = np.exp(rng.uniform(np.log(3), np.log(400), size=2))
    w, h = min(w, width - 1), min(h, height - 1)
    x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
    return [x, y, x + w, y + h]


def jitter(rng: np.random.Generator, box: list[float]) -> list[float]:
    x1, y1, x2, y2 = box
    s = 0.12 * np.array([x2 - x1, y2 - y1, x2 - x1, y2 - y1])
    out = np.array(box) + rng.normal(0, 1, 4) * s
    return [out[0], out[1], max(out[2], out[0] + 0.5), max(out[3], out[1] + 0.5)]


def make_dataset(seed: int, n_images: int = 220) -> tuple[list[dict], list[dict]]:
    """Random targets/outputs as torch tensors (float32 boxes), with every edge case in it."""
    rng = np.random.default_rng(seed)
    targets, outputs = [], []
    for i in range(n_images):
        width, height = int(rng.integers(320, 800)), int(rng.integers(320, 800))
        n_gt = 0 if rng.random() < 0.1 else int(rng.integers(1, 9))
        gt_boxes = [random_box(rng, width, height) for _ in range(n_gt)]
        gt_labels = rng.integers(0, len(CLASSES), n_gt)
        crowd = rng.random(n_gt) < 0.08
        det_boxes, det_labels = [], []
        if rng.random() > 0.08:  # some images have no detections at all
            for box, label in zip(gt_boxes, gt_labels):
                for _ in range(int(rng.integers(0, 3))):  # misses and duplicates
                    det_boxes.append(jitter(rng, box))
                    det_labels.append(label if rng.random() < 0.85 else rng.integers(0, len(CLASSES)))
            n_fp = 150 if i == 7 else int(rng.integers(0, 5))  # one image beyond maxDets=100
            for _ in range(n_fp):
                det_boxes.append(random_box(rng, width, height))
                det_labels.append(rng.integers(0, len(CLASSES)))
        target = {
            "image_id": 1000 + 3 * i,
            "boxes": torch.tensor(gt_boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(gt_labels, dtype=torch.int64),
            "iscrowd": torch.tensor(crowd, dtype=torch.bool),
            "orig_size": (height, width),
        }
        if i % 5 == 0:  # an explicit area (as COCO files carry a mask area) on some images
            b = target["boxes"].double()
            target["area"] = 0.8 * (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        targets.append(target)
        outputs.append({
            "boxes": torch.tensor(det_boxes, dtype=torch.float32).reshape(-1, 4),
            "scores": torch.tensor(rng.random(len(det_boxes)), dtype=torch.float32),
            "labels": torch.tensor(np.array(det_labels, dtype=np.int64)),
        })
    return targets, outputs


def direct_cocoeval(targets: list[dict], outputs: list[dict], max_dets: list[int] | None = None) -> COCOeval:
    """The reference: JSON-like dicts written out by hand, then plain pycocotools."""
    images, anns, dets = [], [], []
    for t, o in zip(targets, outputs):
        images.append({"id": t["image_id"], "height": t["orig_size"][0], "width": t["orig_size"][1]})
        areas = t["area"].tolist() if "area" in t else [None] * len(t["labels"])
        gt_rows = zip(t["boxes"].tolist(), t["labels"].tolist(), t["iscrowd"].tolist(), areas)
        for (x1, y1, x2, y2), label, crowd, area in gt_rows:
            anns.append({
                "id": len(anns) + 1, "image_id": t["image_id"], "category_id": label + 1,
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1) if area is None else area,
                "iscrowd": int(crowd),
            })
        for (x1, y1, x2, y2), score, label in zip(o["boxes"].tolist(), o["scores"].tolist(), o["labels"].tolist()):
            bbox = [x1, y1, x2 - x1, y2 - y1]
            dets.append({"image_id": t["image_id"], "category_id": label + 1, "bbox": bbox, "score": score})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        categories = [{"id": k + 1, "name": n} for k, n in enumerate(CLASSES)]
        gt.dataset = {"images": images, "annotations": anns, "categories": categories}
        gt.createIndex()
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, "bbox")
        if max_dets is not None:
            ev.params.maxDets = max_dets
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def run(targets: list[dict], outputs: list[dict], batch: int = 16, **kwargs) -> COCOEvaluator:
    ev = COCOEvaluator(kwargs.pop("class_names", CLASSES), **kwargs)
    for s in range(0, len(targets), batch):
        ev.process(targets[s : s + batch], outputs[s : s + batch])
    return ev


def reference_per_class(precision: np.ndarray, t: slice | int) -> list[float]:
    out = []
    for k in range(precision.shape[2]):
        p = precision[t, :, k, 0, -1]
        out.append(float(np.mean(p[p > -1])) if (p > -1).any() else -1.0)
    return out


@pytest.fixture(scope="module")
def dataset() -> tuple[list[dict], list[dict]]:
    return make_dataset(seed=0)


@pytest.fixture(scope="module")
def reference(dataset) -> COCOeval:
    return direct_cocoeval(*dataset)


def test_dataset_covers_the_edge_cases(dataset) -> None:
    targets, outputs = dataset
    areas = torch.cat([(t["boxes"][:, 2] - t["boxes"][:, 0]) * (t["boxes"][:, 3] - t["boxes"][:, 1]) for t in targets])
    assert (areas < 32**2).sum() > 50 and ((areas >= 32**2) & (areas < 96**2)).sum() > 50 and (areas >= 96**2).sum() > 50
    assert sum(len(t["labels"]) == 0 for t in targets) >= 5
    assert sum(len(o["labels"]) == 0 for o in outputs) >= 5
    assert sum(int(t["iscrowd"].sum()) for t in targets) >= 10
    assert max(len(o["labels"]) for o in outputs) > 100


def test_pycocotools_backend_equals_direct_pycocotools(dataset, reference) -> None:
    result = run(*dataset).evaluate()
    assert [result[k] for k in STAT_KEYS] == pytest.approx(reference.stats.tolist(), abs=1e-9)
    assert 0.05 < result["AP"] < 0.9  # a non-trivial operating point
    precision = reference.eval["precision"]
    assert list(result["per_class_AP"].values()) == pytest.approx(reference_per_class(precision, slice(None)), abs=1e-9)
    assert list(result["per_class_AP50"].values()) == pytest.approx(reference_per_class(precision, 0), abs=1e-9)
    assert list(result["per_class_AP"]) == CLASSES


def test_faster_coco_eval_equals_pycocotools(dataset, reference) -> None:
    fast = run(*dataset, backend="faster-coco-eval").compute()
    assert list(fast.stats.values()) == pytest.approx(reference.stats.tolist(), abs=1e-9)
    slow = run(*dataset).compute()
    assert list(fast.per_class_AP.values()) == pytest.approx(list(slow.per_class_AP.values()), abs=1e-9)
    assert list(fast.per_class_AP50.values()) == pytest.approx(list(slow.per_class_AP50.values()), abs=1e-9)
    np.testing.assert_allclose(fast.precision, slow.precision, rtol=0, atol=1e-12)


def test_backends_agree_with_tied_scores() -> None:
    targets, outputs = make_dataset(seed=3, n_images=80)
    for o in outputs:
        o["scores"] = torch.round(o["scores"] * 4) / 4  # five distinct scores: ties everywhere
    ref = direct_cocoeval(targets, outputs)
    for backend in ("pycocotools", "faster-coco-eval"):
        result = run(targets, outputs, backend=backend).compute()
        assert list(result.stats.values()) == pytest.approx(ref.stats.tolist(), abs=1e-9), backend


def test_precision_array_and_pr_curve(dataset, reference) -> None:
    result = run(*dataset).compute()
    np.testing.assert_array_equal(result.precision, reference.eval["precision"])
    curve = result.pr_curve(0.5)
    assert curve.shape == (len(CLASSES), 101)
    np.testing.assert_array_equal(curve, reference.eval["precision"][0, :, :, 0, -1].T)
    with pytest.raises(ValueError, match="iou: expected one of"):
        result.pr_curve(0.52)


@pytest.mark.parametrize("backend", ["pycocotools", "faster-coco-eval"])
def test_custom_max_dets(dataset, backend) -> None:
    targets, outputs = dataset
    ref = direct_cocoeval(targets, outputs, max_dets=[1, 5, 20])
    result = run(targets, outputs, backend=backend, max_dets=(1, 5, 20)).evaluate()
    assert {"AR1", "AR5", "AR20"} <= set(result)
    assert [result[k] for k in ["AP50", "AR1", "AR5", "AR20", "ARs"]] == pytest.approx(
        [ref.stats[i] for i in (1, 6, 7, 8, 9)], abs=1e-9
    )
    # pycocotools' stats[0] hard-codes maxDets=100 (and gives -1 here); we average the last max_dets
    p = ref.eval["precision"][:, :, :, 0, -1]
    assert result["AP"] == pytest.approx(float(p[p > -1].mean()), abs=1e-9)


@pytest.mark.parametrize("backend", ["pycocotools", "faster-coco-eval"])
def test_perfect_predictions_score_one(dataset, backend) -> None:
    targets, _ = dataset
    outputs = []
    for i, t in enumerate(targets):
        keep = ~t["iscrowd"]
        n = int(keep.sum())
        outputs.append({"boxes": t["boxes"][keep], "scores": torch.linspace(0.9, 0.1, n), "labels": t["labels"][keep]})
    result = run(targets, outputs, backend=backend).evaluate()
    for key in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"):
        assert result[key] == pytest.approx(1.0, abs=1e-12), key
    assert all(v == pytest.approx(1.0) for v in result["per_class_AP"].values())


@pytest.mark.parametrize("backend", ["pycocotools", "faster-coco-eval"])
def test_hand_computed_single_class(backend) -> None:
    # 2 GT, 3 detections in score order TP, FP, TP (IoU 1 or 0, so all ten IoU thresholds agree).
    # recall 0.5, 0.5, 1.0; precision 1, 1/2, 2/3; envelope: 1 up to recall 0.5, 2/3 after.
    # 101-point AP = (51 * 1 + 50 * 2/3) / 101 = 253/303.  AR1 = 1/2 (one image, one det kept).
    targets = [{"image_id": 7, "boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), "labels": torch.tensor([0, 0])}]
    outputs = [{
        "boxes": torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]]),
        "scores": torch.tensor([0.9, 0.8, 0.7]),
        "labels": torch.tensor([0, 0, 0]),
    }]
    result = run(targets, outputs, class_names=["digit", "unused"], backend=backend).evaluate()
    assert result["AP"] == pytest.approx(253 / 303, abs=1e-12)
    assert result["AP50"] == pytest.approx(253 / 303, abs=1e-12)
    assert result["APs"] == pytest.approx(253 / 303, abs=1e-12)  # area 100 < 32²
    assert (result["APm"], result["APl"], result["ARm"]) == (-1.0, -1.0, -1.0)
    assert (result["AR1"], result["AR10"], result["AR100"]) == (0.5, 1.0, 1.0)
    assert result["per_class_AP"] == {"digit": pytest.approx(253 / 303), "unused": -1.0}


@pytest.mark.parametrize("backend", ["pycocotools", "faster-coco-eval"])
def test_no_detections_and_no_ground_truth(backend) -> None:
    empty = {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}
    targets = [{"image_id": 1, "boxes": torch.tensor([[0.0, 0, 50, 50]]), "labels": torch.tensor([1])}]
    result = run(targets, [empty], class_names=["a", "b"], backend=backend).evaluate()
    assert result["AP"] == 0.0 and result["AR100"] == 0.0 and result["per_class_AP"] == {"a": -1.0, "b": 0.0}
    no_gt = [{"image_id": 2, "boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    dets = [{"boxes": torch.tensor([[0.0, 0, 5, 5]]), "scores": torch.tensor([0.5]), "labels": torch.tensor([0])}]
    result = run(no_gt, dets, class_names=["a", "b"], backend=backend).evaluate()
    assert all(result[k] == -1.0 for k in STAT_KEYS)


def test_reset_and_repeated_evaluate(dataset) -> None:
    targets, outputs = dataset
    ev = run(targets[:40], outputs[:40])
    first = ev.evaluate()
    assert ev.evaluate() == first
    ev.reset()
    with pytest.raises(ValueError, match="no images were processed"):
        ev.evaluate()
    ev.process(targets[:40], outputs[:40])  # same ids are fine again after reset
    assert ev.evaluate() == first


@pytest.mark.parametrize("backend", ["pycocotools", "faster-coco-eval"])
def test_silent_unless_verbose(dataset, backend, capsys) -> None:
    targets, outputs = dataset
    run(targets[:10], outputs[:10], backend=backend).evaluate()
    assert capsys.readouterr().out == ""
    run(targets[:10], outputs[:10], backend=backend, verbose=True).evaluate()
    assert "Average Precision" in capsys.readouterr().out


def test_accepts_numpy_and_lists() -> None:
    targets = [{"image_id": np.int64(3), "boxes": [[0.0, 0, 10, 10]], "labels": np.array([0])}]
    outputs = [{"boxes": np.array([[0.0, 0, 10, 10]]), "scores": [0.3], "labels": [0]}]
    assert run(targets, outputs, class_names=["a"]).evaluate()["AP"] == pytest.approx(1.0)


def _good() -> tuple[list[dict], list[dict]]:
    targets = [
        {"image_id": 5, "boxes": torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 20]]), "labels": torch.tensor([0, 1])},
        {"image_id": 6, "boxes": torch.tensor([[1.0, 1, 9, 9]]), "labels": torch.tensor([1])},
    ]
    outputs = [
        {"boxes": torch.tensor([[0.0, 0, 10, 10]]), "scores": torch.tensor([0.9]), "labels": torch.tensor([0])},
        {"boxes": torch.tensor([[1.0, 1, 9, 9], [2, 2, 4, 4]]), "scores": torch.tensor([0.8, 0.1]), "labels": torch.tensor([1, 1])},
    ]
    return targets, outputs


def _set(side: str, i: int, key: str, value: object):
    def mutate(targets: list[dict], outputs: list[dict]) -> None:
        (targets if side == "t" else outputs)[i][key] = value

    return mutate


BAD_INPUTS = [
    (
        _set("t", 1, "labels", torch.tensor([2])),
        ValueError,
        r"targets\[1\] \(image_id=6\) target labels\[0\]: label 2 out of range \[0, 2\)",
    ),
    (
        _set("o", 1, "labels", torch.tensor([1, -1])),
        ValueError,
        r"outputs\[1\] \(image_id=6\) output labels\[1\]: label -1 out of range",
    ),
    (
        _set("t", 1, "image_id", 5),
        ValueError,
        r"targets\[1\]: image_id=5 was already processed",
    ),
    (
        _set("t", 0, "labels", torch.tensor([0])),
        ValueError,
        r"targets\[0\] \(image_id=5\) target labels: expected shape \[2\]",
    ),
    (
        _set("o", 1, "scores", torch.tensor([0.8])),
        ValueError,
        r"outputs\[1\] \(image_id=6\) output scores: expected shape \[2\]",
    ),
    (
        _set("t", 0, "boxes", torch.tensor([[0.0, 0, 10, 10], [5, float("nan"),
        20,
        20]])), ValueError, r"image_id=5\) target boxes\[1\]: box is not finite",
    ),
    (
        _set("o", 1, "boxes", torch.tensor([[1.0, 1, 9, 9], [2, 2, float("inf"),
        4]])),
        ValueError, r"image_id=6\) output boxes\[1\]: box is not finite",
    ),
    (
        _set("o", 1, "scores", torch.tensor([0.8, float("nan")])),
        ValueError,
        r"image_id=6\) output scores\[1\]: value is not finite",
    ),
    (
        _set("t", 0, "boxes", torch.tensor([[0.0, 0, 10, 10], [5, 5, 2, 20]])),
        ValueError,
        r"target boxes\[1\]: expected xyxy with x2 >= x1",
    ),
    (
        _set("t", 0, "boxes", torch.zeros(2, 5)),
        ValueError,
        r"target boxes: expected boxes of shape \[N, 4\]",
    ),
    (
        _set("t", 0, "labels", torch.tensor([0.0, 1.0])),
        TypeError,
        r"expected integer labels, got dtype float32",
    ),
    (
        _set("t", 0, "iscrowd", torch.tensor([True])),
        ValueError,
        r"target iscrowd: expected shape \[2\]",
    ),
    (
        _set("t", 0, "image_id", "five"),
        TypeError,
        r"targets\[0\]\['image_id'\]: expected one integer",
    ),
    (
        _set("o", 0, "boxes", None),
        TypeError,
        r"outputs\[0\] \(image_id=5\) output boxes: expected a tensor",
    ),
]


@pytest.mark.parametrize(("mutate", "error", "match"), BAD_INPUTS)
def test_bad_input_is_rejected_and_store_unchanged(mutate, error, match) -> None:
    targets, outputs = _good()
    mutate(targets, outputs)
    ev = COCOEvaluator(["a", "b"])
    with pytest.raises(error, match=match):
        ev.process(targets, outputs)
    with pytest.raises(ValueError, match="no images were processed"):
        ev.evaluate()  # nothing of the bad batch was stored


def test_bad_batch_structure() -> None:
    targets, outputs = _good()
    ev = COCOEvaluator(["a", "b"])
    with pytest.raises(ValueError, match="expected one output per target, got 2 targets and 1 outputs"):
        ev.process(targets, outputs[:1])
    with pytest.raises(TypeError, match="targets: expected a list of dicts"):
        ev.process(targets[0], outputs[0])
    with pytest.raises(ValueError, match=r"targets\[0\]: missing key 'image_id'"):
        ev.process([{"boxes": torch.zeros(0, 4)}], outputs[:1])
    with pytest.raises(ValueError, match=r"outputs\[0\] \(image_id=5\): missing key 'scores'"):
        ev.process(targets[:1], [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0)}])
    ev.process(targets[:1], outputs[:1])
    with pytest.raises(ValueError, match=r"targets\[0\]: image_id=5 was already processed"):
        ev.process(targets[:1], outputs[:1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"class_names": []}, "class_names: expected a non-empty list"),
        ({"class_names": ["a", "a"]}, "names must be unique"),
        ({"backend": "detectron2"}, "backend: expected one of"),
        ({"iou_type": "segm"}, "iou_type: only 'bbox'"),
        ({"max_dets": (10, 1, 100)}, "max_dets: expected three increasing positive ints"),
        ({"max_dets": (1, 100)}, "max_dets: expected three increasing positive ints"),
    ],
)
def test_bad_constructor_arguments(kwargs, match) -> None:
    kwargs = {"class_names": ["a", "b"], **kwargs}
    with pytest.raises(ValueError, match=match):
        COCOEvaluator(**kwargs)


# ------------------------------------------------ the file's area, from the JSON to the evaluator


def write_files_with_areas(root: Path, seed: int = 3) -> tuple[Path, Path]:
    """A COCO ground-truth JSON whose ``area`` is not ``w * h`` (as a segmentation's area is not) and a
    results JSON. Coordinates are multiples of 1/8 px, so float32 boxes hold them exactly."""
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for image_id in range(1, 61):
        width, height = 640, 480
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": width, "height": height})
        for _ in range(int(rng.integers(0, 7))):
            x1, y1, x2, y2 = (np.round(np.array(random_box(rng, width, height)) * 8) / 8).tolist()
            bbox = [x1, y1, x2 - x1, y2 - y1]
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": int(rng.integers(1, 4)),
                         "bbox": bbox, "area": float(bbox[2] * bbox[3] * rng.uniform(0.05, 1.0)),
                         "iscrowd": int(rng.random() < 0.05)})
            for _ in range(int(rng.integers(0, 3))):
                jx1, jy1, jx2, jy2 = (np.round(np.array(jitter(rng, [x1, y1, x2, y2])) * 8) / 8).tolist()
                cat = anns[-1]["category_id"] if rng.random() < 0.85 else int(rng.integers(1, 4))
                dets.append({"image_id": image_id, "category_id": cat, "bbox": [jx1, jy1, jx2 - jx1, jy2 - jy1],
                             "score": float(rng.random())})
    categories = [{"id": k, "name": f"c{k}"} for k in (1, 2, 3)]
    gt = root / "annotations" / "instances_val.json"
    gt.parent.mkdir(parents=True)
    gt.write_text(json.dumps({"images": images, "annotations": anns, "categories": categories}))
    results = root / "results.json"
    results.write_text(json.dumps(dets))
    return gt, results


def pycocotools_on_files(gt: Path, results: Path, box_area: bool = False) -> np.ndarray:
    """The 12 stats of plain pycocotools on the two files (``box_area``: the area replaced by ``w * h``)."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(gt))
        if box_area:
            for ann in coco.dataset["annotations"]:
                ann["area"] = ann["bbox"][2] * ann["bbox"][3]
            coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(str(results)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats)


def test_the_files_area_reaches_the_evaluator_unchanged(tmp_path: Path) -> None:
    gt, results = write_files_with_areas(tmp_path)
    data = load_split(tmp_path, "val")
    json_areas = [a["area"] for a in json.loads(gt.read_text())["annotations"]]
    assert [o.area for r in data.images for o in r.objects] == json_areas
    targets = [target_from_record(r) for r in data.images]
    assert torch.cat([t["area"] for t in targets]).tolist() == json_areas
    evaluator = COCOEvaluator(data.class_names)
    evaluator.process(targets, read_results(data, results))
    ours = evaluator.evaluate()
    reference = pycocotools_on_files(gt, results)
    assert [ours[k] for k in STAT_KEYS] == reference.tolist()  # all 12, exactly
    by_box_area = pycocotools_on_files(gt, results, box_area=True)
    assert np.array_equal(reference[[0, 1, 2, 6, 7, 8]], by_box_area[[0, 1, 2, 6, 7, 8]])
    assert np.abs(reference[[3, 4, 5, 9, 10, 11]] - by_box_area[[3, 4, 5, 9, 10, 11]]).max() > 0.01  # the test bites


def test_a_missing_area_falls_back_to_the_box_area_and_round_trips(tmp_path: Path) -> None:
    gt, _ = write_files_with_areas(tmp_path)
    data = json.loads(gt.read_text())
    del data["annotations"][0]["area"]
    gt.write_text(json.dumps(data))
    split = load_split(tmp_path, "val")
    first = next(o for r in split.images for o in r.objects)
    x, y, w, h = data["annotations"][0]["bbox"]
    assert first.annotated_area is None and first.area == w * h == first.box_area
    again = coco_dict(split)["annotations"]  # what write_coco writes
    assert [a["area"] for a in again] == [w * h] + [a["area"] for a in data["annotations"][1:]]


def test_a_bad_area_is_a_problem(tmp_path: Path) -> None:
    gt, _ = write_files_with_areas(tmp_path)
    data = json.loads(gt.read_text())
    data["annotations"][0]["area"] = "big"
    gt.write_text(json.dumps(data))
    _, problems = read_split(tmp_path, "val")
    assert [p.message.split(": ", 1)[1] for p in problems] == [
        "expected 'area' as a non-negative number (pixels²), got 'big'"]
