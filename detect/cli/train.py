"""``detect train`` and ``detect resume``: the command line of :func:`detect.engine.trainer.fit`.

    detect train --config configs/detect/train_quick.yaml --epochs 2 --output runs/quick
    detect train --detector tv_fasterrcnn_mobilenet_v3_large_320_fpn --data data/digit-scenes/coco \\
        --detector_kwargs '{}' --image_size 256 --time_budget_min 10
    detect resume runs/quick/last.pt [--time_budget_min 20]

Every key of :class:`detect.engine.config.DetectTrainConfig` is a flag (``--lr 0.01``,
``--milestones 0.7 0.9``, ``--scale_jitter none``); flags override the YAML preset, which
overrides the defaults. ``resume`` starts from the config stored in the checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from classify.base.config import add_config_arguments, config_from_args
from detect.engine.config import DetectTrainConfig

EXIT_DIVERGED = 1


def cmd_train(args: argparse.Namespace) -> int:
    from detect.engine.trainer import fit

    config = config_from_args(DetectTrainConfig, args)
    return _run(lambda: fit(config))


def cmd_resume(args: argparse.Namespace) -> int:
    from classify.base.checkpoint import load_checkpoint
    from detect.engine.trainer import fit
    from detect.engine.config import config_from_dict

    path = Path(args.checkpoint)
    path = path / "last.pt" if path.is_dir() else path
    stored = load_checkpoint(path).config
    if "detector" not in stored:
        raise ValueError(f"{path}: not a checkpoint of 'detect train' (its config has no 'detector' key)")
    config = config_from_args(DetectTrainConfig, args, base=config_from_dict(stored))
    return _run(lambda: fit(config, resume=path))


def _run(train: object) -> int:
    try:
        result = train()  # type: ignore[operator]
    except FloatingPointError as exc:
        print(f"error: training diverged: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    best = "-" if result.best_value is None else f"{result.best_value:.4f}"
    print(f"{result.stop_reason}: {result.iterations} iterations in {result.minutes:.2f} training minutes; "
          f"best {result.best_metric} {best}")
    if result.test_metrics is not None:
        t = result.test_metrics
        print(f"test AP {t['AP']:.4f}  AP50 {t['AP50']:.4f}  AP75 {t['AP75']:.4f}")
    print(f"run folder: {result.run_dir}")
    return 0


def add_train_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` and ``resume`` verbs to a ``detect`` sub-command parser."""
    p = subparsers.add_parser(
        "train", help="train a detector (checkpoints, history, curves, test report)",
        description="Train a registry detector. Settings come from the defaults, then the YAML preset "
                    "(--config), then the flags below.")
    add_config_arguments(p, DetectTrainConfig)
    p.set_defaults(func=cmd_train)
    r = subparsers.add_parser(
        "resume", help="continue a stopped run from its last.pt",
        description="Continue a run exactly where it stopped. Settings come from the checkpoint, then "
                    "--config, then the flags below (e.g. a larger --time_budget_min or --epochs).")
    r.add_argument("checkpoint", type=Path, help="a run's last.pt, or its run folder")
    add_config_arguments(r, DetectTrainConfig)
    r.set_defaults(func=cmd_resume)


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser with only ``train`` and ``resume`` (``detect.cli`` adds them to its own)."""
    from classify.base.cli import SuggestingParser

    parser = SuggestingParser(prog="detect", description="detector training")
    add_train_parser(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from detect.cli import run_command

    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
