"""``classify train``: the command line of :func:`classify.engine.trainer.fit`.

    classify train --config configs/classify/classify_lenet5_fashion.yaml
    classify train --model resnet18 --data fashion --image-size 64 --epochs 12 --lr 0.1
    classify train --resume runs/classify/lenet5_fashion/last.pt [--epochs 20]
    classify train --model efficientnet_lite0 --weights imagenet --data fashion --subset 20 \\
        --freeze-backbone --image-size 64

Every key of :class:`classify.engine.config.TrainConfig` is a flag (``--freeze-backbone``; the
underscore spelling ``--freeze_backbone`` works too; ``--freeze-backbone`` alone means true);
flags override the YAML preset, which overrides the defaults.  With ``--resume`` the stored
config is the base, and only ``epochs``, ``device``, ``workers``, ``threads``,
``eval_batch_size``, ``progress`` may change.  A diverged run exits with 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from classify.base.config import add_config_arguments, config_from_args
from classify.engine.config import TrainConfig


def _checkpoint_path(path: str | Path) -> Path:
    path = Path(path)
    return path / "last.pt" if path.is_dir() else path


def cmd_train(args: argparse.Namespace) -> int:
    """Train (or resume) a run and print its scores; returns the exit code."""
    from classify.engine.trainer import fit

    base = None
    if args.resume is not None:
        from classify.base.checkpoint import load_checkpoint
        from classify.engine.run import config_from_checkpoint

        path = _checkpoint_path(args.resume)
        base = config_from_checkpoint(load_checkpoint(path), str(path))
    config = config_from_args(TrainConfig, args, base=base)
    result = fit(config, resume=args.resume)
    test = result.test
    chosen = (f"best validation top-1 {100 * result.best_top1:.2f}% at epoch {result.best_epoch}"
              if result.selected_on_validation else "no validation split: best.pt is the last epoch")
    print(f"best.pt: test top-1 {100 * test.top1:.2f}%  top-5 {100 * test.top5:.2f}%  ({test.images} images)"
          f"; {chosen}; {result.epoch_seconds:.1f} s per training epoch")
    print(f"run folder: {result.run_dir}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a classifier (curves, confusion matrix, checkpoints)",
                       description="Train a registry classifier on mnist5k, fashion, digits or an "
                       "image folder. Writes runs/classify/<name>/{last,best}.pt, curves.png, "
                       "confusion_matrix.png, results.json.")
    p.add_argument("--resume", metavar="LAST_PT", default=None,
                   help="continue a run from its last.pt (or run folder); its config is the base")
    add_config_arguments(p, TrainConfig)
    p.set_defaults(func=cmd_train)
