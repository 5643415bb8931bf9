"""Engine functions on toy detectors: mean losses, early stops, NaN, evaluation; the seeded sampler;
the up-front check of every box."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from classify.base.ema import ModelEMA
from classify.base.schedule import LRSchedule, build_scheduler
from detect.data.sampler import GroupedBatchSampler, SeededDataset, aspect_ratio_groups
from detect.engine.data import check_targets
from detect.engine.loop import LossMeter, train_one_epoch, training_targets
from detect.inference.evaluate import evaluate_detector
from detect.structures import DatasetSplit, ImageRecord, ObjectAnnotation

# ----------------------------------------------------------------------------- toy detectors


class QuadraticDetector(nn.Module):
    """Train mode: ``loss_w = w**2`` and ``loss_boxes`` = boxes in the first target (a constant)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(1.0))

    def forward(self, images: list[torch.Tensor], targets: list[dict] | None = None):
        assert targets is not None
        return {"loss_w": self.w ** 2, "loss_boxes": self.w * 0 + float(len(targets[0]["boxes"]))}


class OracleDetector(nn.Module):
    """Eval mode: one box around the non-zero pixels of each image, label 0, score 0.9.

    Draws from the global RNG on every call, like a detector that samples.
    """

    def __init__(self, empty: bool = False) -> None:
        super().__init__()
        self.empty = empty
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, images: list[torch.Tensor], targets: list[dict] | None = None):
        torch.rand(5)
        outputs = []
        for image in images:
            if self.empty:
                outputs.append({"boxes": torch.zeros(0, 4), "scores": torch.zeros(0),
                                "labels": torch.zeros(0, dtype=torch.int64)})
                continue
            ys, xs = torch.nonzero(image.sum(0), as_tuple=True)
            box = torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=torch.float32)
            outputs.append({"boxes": box, "scores": torch.tensor([0.9]), "labels": torch.tensor([0])})
        return outputs


class RectangleDataset(Dataset):
    """Black 40x48 images, each with one white rectangle: its box is the ground truth."""

    BOXES = [(4, 5, 20, 30), (10, 2, 40, 12), (0, 0, 48, 40)]

    def __len__(self) -> int:
        return len(self.BOXES)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        x1, y1, x2, y2 = self.BOXES[index]
        image = torch.zeros(3, 40, 48)
        image[:, y1:y2, x1:x2] = 1.0
        target = {"boxes": torch.tensor([[x1, y1, x2, y2]], dtype=torch.float32), "labels": torch.tensor([0]),
                  "image_id": index + 1, "orig_size": (40, 48)}
        return image, target


def batches(n: int, boxes_per_image: int = 2) -> list[tuple[list[torch.Tensor], list[dict]]]:
    target = {"boxes": torch.tensor([[1.0, 1.0, 5.0, 5.0]] * boxes_per_image),
              "labels": torch.zeros(boxes_per_image, dtype=torch.int64)}
    return [([torch.zeros(3, 8, 8)], [target]) for _ in range(n)]


# ----------------------------------------------------------------------------- train_one_epoch


def test_train_one_epoch_returns_mean_losses_and_steps_scheduler_and_ema() -> None:
    model = QuadraticDetector()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = build_scheduler(optimizer, LRSchedule(total_iters=10, kind="constant"))
    ema = ModelEMA(model, decay=0.5)
    stats = train_one_epoch(model, optimizer, batches(2), scheduler, None, ema, "cpu", epoch=0, progress=False)
    # w: 1 -> 1 - 0.1 * 2 * 1 = 0.8 -> 0.64; loss_w = 1, 0.64; loss_boxes = 2, 2
    assert stats["loss_w"] == pytest.approx((1.0 + 0.64) / 2)
    assert stats["loss_boxes"] == pytest.approx(2.0)
    assert stats["loss"] == pytest.approx((3.0 + 2.64) / 2)
    assert stats["iterations"] == 2 and stats["lr"] == pytest.approx(0.1)
    assert model.w.item() == pytest.approx(0.64 * 1.0)  # 0.8 - 0.1 * 2 * 0.8 = 0.64
    assert scheduler.last_epoch == 2 and ema.updates == 2
    assert ema.module.w.item() == pytest.approx(0.5 * (0.5 * 1.0 + 0.5 * 0.8) + 0.5 * 0.64)
    assert model.training


def test_train_one_epoch_stops_at_max_iters_and_on_request_and_continues_a_meter() -> None:
    model = QuadraticDetector()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    assert train_one_epoch(model, optimizer, batches(5), None, None, None, "cpu", 0, max_iters=3,
                           progress=False)["iterations"] == 3
    calls = []
    stats = train_one_epoch(model, optimizer, batches(5), None, None, None, "cpu", 0, progress=False,
                            should_stop=lambda: calls.append(1) or len(calls) >= 2)
    assert stats["iterations"] == 2
    meter = LossMeter()
    meter.load_state_dict({"sums": {"loss": 10.0, "loss_w": 4.0, "loss_boxes": 6.0}, "count": 4})
    stats = train_one_epoch(model, optimizer, batches(1, boxes_per_image=1), None, None, None, "cpu", 0,
                            meter=meter, progress=False)
    assert stats["iterations"] == 1 and meter.count == 5
    assert stats["loss_boxes"] == pytest.approx((6.0 + 1.0) / 5) and stats["loss_w"] == pytest.approx(5.0 / 5)


def test_non_finite_loss_names_epoch_iteration_and_losses() -> None:
    model = QuadraticDetector()
    with torch.no_grad():
        model.w.fill_(float("nan"))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(FloatingPointError, match=r"non-finite loss at epoch 3, iteration 1 of the epoch "
                                                 r"\(loss_w=nan, loss_boxes=nan\)"):
        train_one_epoch(model, optimizer, batches(2), None, None, None, "cpu", epoch=2, progress=False)


def test_training_targets_keep_boxes_and_labels_without_crowds() -> None:
    target = {"boxes": torch.tensor([[0.0, 0, 2, 2], [1, 1, 3, 3], [2, 2, 4, 4]]), "labels": torch.tensor([0, 1, 2]),
              "iscrowd": torch.tensor([False, True, False]), "image_id": 7, "orig_size": (4, 4)}
    (out,) = training_targets([target], torch.device("cpu"))
    assert set(out) == {"boxes", "labels"}
    assert out["labels"].tolist() == [0, 2] and out["boxes"].tolist() == [[0, 0, 2, 2], [2, 2, 4, 4]]


# ----------------------------------------------------------------------------- evaluate


def test_evaluate_scores_a_perfect_and_an_empty_detector_and_leaves_the_rng_alone() -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    evaluation = evaluate_detector(OracleDetector(), RectangleDataset(), ["box"], batch_size=2, progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    perfect = evaluation.metrics()
    assert perfect["AP"] == pytest.approx(1.0) and perfect["AP50"] == pytest.approx(1.0)
    assert evaluation.report.coco.per_class_AP == {"box": pytest.approx(1.0)} and perfect["images"] == 3
    assert perfect["seconds_per_image"] >= 0 and perfect["f1"] == pytest.approx(1.0)
    empty = evaluate_detector(OracleDetector(empty=True), RectangleDataset(), ["box"], progress=False).metrics()
    assert empty["AP"] == 0.0 and empty["AR100"] == 0.0


def test_evaluate_restores_train_mode() -> None:
    model = OracleDetector().train()
    evaluate_detector(model, RectangleDataset(), ["box"], progress=False)
    assert model.training


# ----------------------------------------------------------------------------- sampler


def test_aspect_ratio_groups_match_the_bin_edges() -> None:
    ratios = [0.4, 0.5, 0.9, 1.0, 1.5, 2.0, 3.0]
    assert aspect_ratio_groups(ratios, group_factor=1) == [0, 1, 1, 2, 2, 3, 3]  # edges 0.5, 1, 2
    assert aspect_ratio_groups(ratios, group_factor=0) == [0, 0, 0, 1, 1, 1, 1]  # edge 1
    with pytest.raises(ValueError, match=r"image indices \[1\] are not"):
        aspect_ratio_groups([1.0, 0.0])


def test_grouped_batches_are_homogeneous_complete_and_seeded() -> None:
    groups = [0, 1, 0, 1, 0, 0, 1, 2]
    sampler = GroupedBatchSampler(groups, batch_size=2, seed=7)
    epoch0 = sampler.batches(0)
    assert len(epoch0) == sampler.num_batches() == len(sampler) == 2 + 2 + 1
    assert all(len({groups[i] for i in batch}) == 1 for batch in epoch0)
    assert sorted(i for batch in epoch0 for i in batch) == list(range(8))
    assert [len(b) for b in epoch0].count(2) == 3  # 2 full batches of group 0, 1 of group 1
    assert epoch0 == GroupedBatchSampler(groups, batch_size=2, seed=7).batches(0)
    assert epoch0 != sampler.batches(1)
    assert epoch0 != GroupedBatchSampler(groups, batch_size=2, seed=8).batches(0)
    sampler.set_epoch(1, start=2)
    assert list(sampler) == sampler.batches(1)[2:] and len(sampler) == 3
    ordered = GroupedBatchSampler([0] * 5, batch_size=2, shuffle=False, drop_last=True)
    assert ordered.batches(0) == [[0, 1], [2, 3]] and ordered.num_batches() == 2
    with pytest.raises(ValueError, match=r"start batch: expected 0\.\.5, got 6"):
        sampler.set_epoch(0, start=6)


class RandomNumbers(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.rand(3)


def test_seeded_dataset_draws_per_sample_seeds_and_keeps_the_global_rng() -> None:
    data = SeededDataset(RandomNumbers(), seed=1)
    state = torch.get_rng_state()
    first = [data[i] for i in range(4)]
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a, data[i]) for i, a in enumerate(first))
    assert not torch.equal(first[0], first[1])
    data.set_epoch(1)
    assert not torch.equal(first[0], data[0])
    assert not torch.equal(first[0], SeededDataset(RandomNumbers(), seed=2)[0])
    assert len(data) == 4


# ----------------------------------------------------------------------------- checking the boxes


def test_bad_boxes_are_all_listed_with_file_image_id_and_object(tmp_path: Path) -> None:
    ok = ObjectAnnotation((1.0, 1.0, 10.0, 10.0), 0)
    records = [
        ImageRecord(1, "empty.jpg", 32, 32, ()),  # no objects: valid
        ImageRecord(2, "a.jpg", 32, 32, (ok, ObjectAnnotation((5.0, 5.0, 5.0, 9.0), 1))),
        ImageRecord(7, "b.jpg", 32, 24, (ObjectAnnotation((20.0, 2.0, 40.0, 8.0), 0), ok,
                                         ObjectAnnotation((3.0, 9.0, 8.0, 4.0), 1))),
    ]
    split = DatasetSplit(["x", "y"], records, tmp_path, name="train")
    with pytest.raises(ValueError) as info:
        check_targets(split)
    text = str(info.value)
    assert "3 bad annotation(s) in split 'train'" in text
    assert f"{tmp_path / 'a.jpg'} (image_id 2) object 1: box (5, 5, 5, 9) has non-positive size (0 x 4)" in text
    assert f"{tmp_path / 'b.jpg'} (image_id 7) object 0: box (20, 2, 40, 8) lies outside the 32x24 image" in text
    assert f"{tmp_path / 'b.jpg'} (image_id 7) object 2: box (3, 9, 8, 4) has non-positive size" in text
    assert "empty.jpg" not in text
    check_targets(DatasetSplit(["x"], [records[0], ImageRecord(3, "c.jpg", 32, 32, (ok,))], tmp_path))
