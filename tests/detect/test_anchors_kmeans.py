"""k-means anchors (1 - IoU, YOLOv2) and ``detect anchors``: shape IoU by hand, recovered clusters,
seeds, hand-picked anchors, letterboxed sizes, the CLI on the tiny digit scenes and its errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from detect.cli import main as detect_main
from detect.data.build import build_digit_scenes
from detect.data.formats import write_split
from detect.data.scene_config import scene_config
from detect.models.yolo.kmeans import (
    YOLOV3_COCO_ANCHORS,
    hand_picked_anchors,
    kmeans_anchors,
    kmeans_pp_init,
    ladder_anchors,
    mean_best_iou,
    paper_anchors,
    shape_iou,
)
from detect.structures import DatasetSplit, ImageRecord, ObjectAnnotation
from detect.tasks.anchors import fit_dataset_anchors, letterboxed_box_sizes

CENTRES = torch.tensor([[10.0, 10.0], [40.0, 20.0], [20.0, 80.0]], dtype=torch.float64)


def clusters(per_cluster: int = 40, spread: float = 0.05, seed: int = 0) -> torch.Tensor:
    """``[3 * per_cluster, 2]`` sizes: each of ``CENTRES`` times ``1 + U(-spread, spread)`` per side."""
    g = torch.Generator().manual_seed(seed)
    noise = 1 + spread * (2 * torch.rand(3, per_cluster, 2, generator=g, dtype=torch.float64) - 1)
    return (CENTRES[:, None, :] * noise).reshape(-1, 2)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    build_digit_scenes(out, scene_config("tiny"), progress=False, workers=1)
    return out / "coco"


# ----------------------------------------------------------------------------- k-means


def test_shape_iou_by_hand() -> None:
    iou = shape_iou(torch.tensor([[2.0, 2.0], [4.0, 1.0]]), torch.tensor([[1.0, 4.0], [2.0, 2.0]]))
    # (2x2, 1x4): overlap 1 x 2 = 2, union 4 + 4 - 2 = 6; (4x1, 1x4): 1 / 7; identical boxes: 1; (4x1, 2x2): 2 / 6
    torch.testing.assert_close(iou, torch.tensor([[1 / 3, 1.0], [1 / 7, 1 / 3]]))
    assert mean_best_iou([[2.0, 2.0], [4.0, 1.0]], [[1.0, 4.0], [2.0, 2.0]]) == pytest.approx((1 + 1 / 3) / 2)


def test_kmeans_recovers_three_separated_clusters() -> None:
    sizes = clusters()
    result = kmeans_anchors(sizes, 3, seed=0)
    assert result.converged and result.anchors.shape == (3, 2)
    areas = result.anchors.prod(dim=1)
    assert torch.all(areas[1:] >= areas[:-1])  # sorted by area: 10x10, 40x20, 20x80
    torch.testing.assert_close(result.anchors, CENTRES, rtol=0.03, atol=0)
    assert torch.equal(result.assignment, torch.arange(3).repeat_interleave(40))
    assert result.mean_iou > 0.93
    assert result.mean_iou == pytest.approx(mean_best_iou(sizes, result.anchors))
    # a bad start (all three centres inside the small cluster) serves the boxes far worse
    bad = torch.tensor([[9.0, 9.0], [10.0, 10.0], [11.0, 11.0]])
    assert mean_best_iou(sizes, bad) < 0.45 < result.mean_iou - 0.45
    # and Lloyd's iterations from it still find the clusters (an emptied centre moves to the worst-served box)
    assert kmeans_anchors(sizes, 3, init=bad).mean_iou == pytest.approx(result.mean_iou, abs=0.01)


def test_kmeans_is_deterministic_for_a_seed_and_the_update_rule_is_chosen() -> None:
    sizes = torch.rand(200, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 90 + 5
    first, again = kmeans_anchors(sizes, 5, seed=7), kmeans_anchors(sizes, 5, seed=7)
    assert torch.equal(first.anchors, again.anchors) and first.mean_iou == again.mean_iou
    mean = kmeans_anchors(sizes, 5, seed=7, update="mean")
    assert mean.converged and not torch.equal(mean.anchors, first.anchors)
    for result in (first, mean):  # any local optimum beats a single anchor
        assert result.mean_iou > kmeans_anchors(sizes, 1, seed=7).mean_iou


def test_kmeans_pp_init_draws_boxes_and_spreads_them() -> None:
    sizes = clusters(per_cluster=30, spread=0.0)  # 3 distinct shapes, 30 copies each
    init = kmeans_pp_init(sizes, 3, torch.Generator().manual_seed(0))
    # after the first draw a copy of a chosen shape has weight 0, so the three shapes are drawn once each
    assert sorted(map(tuple, init.tolist())) == sorted(map(tuple, CENTRES.tolist()))


def test_kmeans_rejects_bad_input() -> None:
    sizes = clusters(per_cluster=2)
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, number of boxes = 6\], got 0"):
        kmeans_anchors(sizes, 0)
    with pytest.raises(ValueError, match="got 7"):
        kmeans_anchors(sizes, 7)
    with pytest.raises(ValueError, match=r"expected \(w, h\) pairs, a \[N, 2\] array, got shape \[6\]"):
        kmeans_anchors(sizes[:, 0], 2)
    with pytest.raises(ValueError, match=r"pair 1 is \[0.0, 3.0\], expected a positive finite width and height"):
        kmeans_anchors([[1.0, 2.0], [0.0, 3.0]], 1)
    with pytest.raises(ValueError, match="update must be one of"):
        kmeans_anchors(sizes, 2, update="mode")


# ----------------------------------------------------------------------------- hand-picked anchors


def test_hand_picked_anchors_are_the_paper_s_at_k9_and_a_ladder_otherwise() -> None:
    anchors, rule = hand_picked_anchors(9, 416)
    assert anchors.tolist() == [list(map(float, a)) for a in YOLOV3_COCO_ANCHORS] and "paper" in rule
    torch.testing.assert_close(paper_anchors(320), anchors * 320 / 416)
    assert hand_picked_anchors(9, 320)[0].tolist() == paper_anchors(320).tolist()
    one, rule = hand_picked_anchors(1, 416)
    assert one.tolist() == [[64.0, 64.0]] and "ladder" in rule
    four = ladder_anchors(4, 208)  # sizes 16 and 256 at 416, halved; 1:1, 1:2, 2:1, then 1:1 of the next size
    torch.testing.assert_close(four, torch.tensor(
        [[8.0, 8.0], [8 / math.sqrt(2), 8 * math.sqrt(2)], [8 * math.sqrt(2), 8 / math.sqrt(2)], [128.0, 128.0]],
        dtype=torch.float64))


def test_letterboxed_box_sizes_scale_by_the_longer_image_side(tmp_path: Path) -> None:
    split = DatasetSplit(["a"], [
        ImageRecord(1, "a.png", 200, 100, (ObjectAnnotation((0, 0, 20, 10), 0),)),
        ImageRecord(2, "b.png", 50, 160, (ObjectAnnotation((5, 5, 25, 45), 0), ObjectAnnotation((1, 1, 3, 5), 0))),
    ], tmp_path)
    torch.testing.assert_close(letterboxed_box_sizes(split, 320), torch.tensor(
        [[32.0, 16.0], [40.0, 80.0], [4.0, 8.0]], dtype=torch.float64))


# ----------------------------------------------------------------------------- detect anchors


def test_cli_prints_nine_anchors_levels_and_both_ious(tiny: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "anchors.json"
    assert detect_main(["anchors", str(tiny), "-k", "9", "--image-size", "320", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["k"] == 9 and report["num_boxes"] == 45 and report["image_size"] == 320
    assert len(report["anchors"]) == 9 and report["strides"] == [8, 8, 8, 16, 16, 16, 32, 32, 32]
    areas = [w * h for w, h in report["anchors"]]
    assert areas == sorted(areas)
    assert report["kmeans_iou"] >= report["hand_picked_iou"] > 0
    rows = [line for line in text.splitlines() if line[:3].strip().isdigit()]
    assert len(rows) == 9 and rows[0].split()[4] == "8" and rows[8].split()[4] == "32"
    w, h = report["anchors"][0]
    assert f"{w:g} x {h:g}" in rows[0]
    assert (f"mean best IoU: k-means {report['kmeans_iou']:.4f} vs hand-picked {report['hand_picked_iou']:.4f}"
            in text)
    assert "YOLOv3 paper's COCO anchors x 320/416" in text
    again = fit_dataset_anchors(tiny, 9, 320)  # the same seed: the same anchors
    assert again.anchors == report["anchors"] and again.kmeans_iou == pytest.approx(report["kmeans_iou"])


def test_cli_other_k_says_the_hand_picked_rule(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert detect_main(["anchors", str(tiny), "-k", "4", "--image-size", "128", "--split", "val"]) == 0
    text = capsys.readouterr().out
    rows = [line for line in text.splitlines() if line[:3].strip().isdigit()]
    assert len(rows) == 4 and all(row.split()[4] == "-" for row in rows)
    assert "first k of a ladder" in text and "16 boxes" in text
    report = fit_dataset_anchors(tiny, 4, 128, split="val")
    assert report.kmeans_iou >= report.hand_picked_iou


@pytest.mark.parametrize(("args", "message"), [
    (["-k", "0"], "error: detect anchors: -k must be at least 1, got 0"),
    (["-k", "46"], "error: detect anchors: -k 46 is more than the 45 boxes of"),
])
def test_cli_bad_k_is_one_clear_error(tiny: Path, args: list[str], message: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert detect_main(["anchors", str(tiny), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_dataset_without_boxes_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.zeros((64, 64, 3), np.uint8))
    empty = DatasetSplit(["a"], [ImageRecord(1, "a.png", 64, 64)], tmp_path / "images", name="train")
    root = write_split(empty, tmp_path / "empty", "coco")
    assert detect_main(["anchors", str(root), "--format", "coco"]) == 2
    err = capsys.readouterr().err
    assert "has no boxes to fit anchors to" in err and len(err.strip().splitlines()) == 1
    assert detect_main(["anchors", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip() == f"error: dataset not found: {tmp_path / 'nowhere'}"
