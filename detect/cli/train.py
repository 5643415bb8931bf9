"""``detect train`` and ``detect resume``: the command line of :func:`detect.engine.trainer.fit`.

    detect train --config configs/detect/train_quick.yaml --epochs 2 --output runs/quick
    detect train --detector tv_fasterrcnn_mobilenet_v3_large_320_fpn --data data/digit-scenes/coco \\
        --detector-kwargs '{}' --image-size 256 --time-budget-min 10
    detect train --model yolov8n --data data/digit-scenes/yolo --epochs 30 --image-size 320
    detect resume runs/quick/last.pt [--time-budget-min 20]

Every key of :class:`detect.engine.config.DetectTrainConfig` is a flag (``--lr 0.01``,
``--milestones 0.7 0.9``, ``--scale-jitter none``); flags override the YAML preset, which
overrides the defaults; ``--model`` is another name of ``--detector``. The ultralytics models
(``yolov8n``, ``yolov8s``, ``yolo11n``, ``yolo11s``) train with ultralytics' own trainer
(:mod:`detect.engine.ultralytics_train`), offline, into the same run folder. ``resume`` starts
from the config stored in the checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from classify.base.config import add_config_arguments, config_from_args
from detect.engine.config import DetectTrainConfig

if TYPE_CHECKING:
    from detect.engine.trainer import TrainResult


def cmd_train(args: argparse.Namespace) -> int:
    from detect.engine.trainer import fit

    config = config_from_args(DetectTrainConfig, args)
    return _report(fit(config))


def cmd_resume(args: argparse.Namespace) -> int:
    from classify.base.checkpoint import load_checkpoint
    from detect.engine.config import config_from_dict
    from detect.engine.trainer import fit

    path = Path(args.checkpoint)
    path = path / "last.pt" if path.is_dir() else path
    stored = load_checkpoint(path).config
    if "detector" not in stored:
        raise ValueError(f"{path}: not a checkpoint of 'detect train' (its config has no 'detector' key)")
    config = config_from_args(DetectTrainConfig, args, base=config_from_dict(stored))
    return _report(fit(config, resume=path))


def _report(result: TrainResult) -> int:
    best = "-" if result.best_value is None else f"{result.best_value:.4f}"
    print(f"{result.stop_reason}: {result.iterations} iterations in {result.minutes:.2f} training minutes; "
          f"best {result.best_metric} {best}")
    if result.test_metrics is not None:
        t = result.test_metrics
        print(f"test AP {t['AP']:.4f}  AP50 {t['AP50']:.4f}  AP75 {t['AP75']:.4f}")
    print(f"run folder: {result.run_dir}")
    return 0


def _add_model_alias(parser: argparse.ArgumentParser) -> None:
    """``--model NAME``: the same as ``--detector NAME`` (the word ``detect eval`` and ``predict`` use)."""
    parser.add_argument("--model", dest="detector", metavar="NAME", default=argparse.SUPPRESS,
                        help="same as --detector (a registry name; yolov8n, yolov8s, yolo11n and yolo11s "
                             "train with ultralytics' trainer)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``train`` and ``resume`` verbs."""
    p = sub.add_parser(
        "train", help="train a detector (checkpoints, history, curves, test report)",
        description="Train a registry detector. Settings come from the defaults, then the YAML preset "
                    "(--config), then the flags below.")
    add_config_arguments(p, DetectTrainConfig)
    _add_model_alias(p)
    p.set_defaults(func=cmd_train)
    r = sub.add_parser(
        "resume", help="continue a stopped run from its last.pt",
        description="Continue a run exactly where it stopped. Settings come from the checkpoint, then "
                    "--config, then the flags below (e.g. a larger --time-budget-min or --epochs).")
    r.add_argument("checkpoint", type=Path, help="a run's last.pt, or its run folder")
    add_config_arguments(r, DetectTrainConfig)
    r.set_defaults(func=cmd_resume)

