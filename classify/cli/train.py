"""``classify train`` and ``classify eval``: the command line of :mod:`classify.engine.trainer`.

    classify train --config configs/classify/classify_lenet5_fashion.yaml
    classify train --model resnet18 --data fashion --image-size 64 --epochs 12 --lr 0.1
    classify train --resume runs/classify/lenet5_fashion/last.pt [--epochs 20]
    classify train --model efficientnet_lite0 --weights imagenet --data fashion --subset 20 \\
        --freeze-backbone --image-size 64
    classify eval runs/classify/lenet5_fashion/best.pt [--data fashion] [--split test] [--plot cm.png]

Every key of :class:`classify.engine.config.TrainConfig` is a flag, written with underscores or
hyphens (``--freeze_backbone`` = ``--freeze-backbone``; ``--freeze-backbone`` alone means true);
flags override the YAML preset, which overrides the defaults.  With ``--resume`` the stored
config is the base, and only ``epochs``, ``device``, ``workers``, ``threads``,
``eval_batch_size``, ``progress`` may change.

:func:`add_training_parsers` adds both verbs to the ``classify`` command; ``python -m
classify.cli.train`` runs them alone.  User errors are ``ValueError``/``FileNotFoundError``
(one ``error: ...`` line, exit code 2); a diverged run exits with 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from classify.base.cli import SuggestingParser
from classify.base.config import add_config_arguments, config_from_args
from classify.engine.config import TrainConfig

__all__ = ["EXIT_DIVERGED", "add_training_parsers", "cmd_eval", "cmd_train", "main"]

EXIT_DIVERGED = 1
EXIT_USAGE = 2


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
    try:
        result = fit(config, resume=args.resume)
    except FloatingPointError as exc:
        print(f"error: training diverged: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    test = result.test
    print(f"test top-1 {100 * test.top1:.2f}%  top-5 {100 * test.top5:.2f}%  ({test.images} images)"
          f"; best validation top-1 {100 * result.best_top1:.2f}% at epoch {result.best_epoch}"
          f"; {result.epoch_seconds:.1f} s per training epoch")
    print(f"run folder: {result.run_dir}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Score a checkpoint, print top-1/top-5 and per-class accuracy, write the confusion PNG."""
    import torch

    from classify.engine.trainer import evaluate_checkpoint
    from classify.engine.plots import plot_confusion

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    path = Path(args.checkpoint)
    result, config, names = evaluate_checkpoint(
        path, args.data, args.split, per_class=args.subset, batch_size=args.batch_size,
        device=args.device, workers=args.workers, progress=args.progress)
    data = args.data or config.data
    print(f"{path}: {config.model} on {data} ({args.split}, {result.images} images)")
    print(f"top-1 {100 * result.top1:.2f}%  top-5 {100 * result.top5:.2f}%  loss {result.loss:.4f}")
    for name, acc in zip(names, result.per_class):
        print(f"  {name:>16s}  {100 * acc:6.2f}%")
    tag = Path(data).name or "data"
    plot = args.plot or path.parent / f"confusion_{path.stem}_{tag}_{args.split}.png"
    plot_confusion(result.confusion, names, plot,
                   f"{config.model} on {data} ({args.split}): top-1 {100 * result.top1:.2f}%")
    print(f"wrote {plot}")
    return 0


def _add_hyphen_aliases(parser: argparse.ArgumentParser) -> None:
    """For every ``--a_b`` flag add a hidden ``--a-b`` alias with the same behaviour."""
    for action in list(parser._actions):  # argparse has no public accessor for its actions
        for flag in action.option_strings:
            alias = flag.replace("_", "-")
            if flag.startswith("--") and alias != flag and alias not in parser._option_string_actions:
                parser.add_argument(alias, dest=action.dest, nargs=action.nargs, const=action.const,
                                    default=argparse.SUPPRESS, metavar=action.metavar,
                                    help=argparse.SUPPRESS)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a classifier (curves, confusion matrix, checkpoints)",
                       description="Train a registry classifier on mnist5k, fashion, digits or an "
                       "image folder. Writes runs/classify/<name>/{last,best}.pt, curves.png, "
                       "confusion_matrix.png, results.json.")
    p.add_argument("--resume", metavar="LAST_PT", default=None,
                   help="continue a run from its last.pt (or run folder); its config is the base")
    add_config_arguments(p, TrainConfig)
    _add_hyphen_aliases(p)
    p.set_defaults(func=cmd_train)


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score a checkpoint: top-1/top-5, per-class, confusion PNG")
    p.add_argument("checkpoint", help="a checkpoint written by 'classify train'")
    p.add_argument("--data", help="dataset name or image folder (default: the training data)")
    p.add_argument("--split", default="test", help="split to score (default: test)")
    p.add_argument("--subset", type=int, help="score on N images a class")
    p.add_argument("--batch-size", type=int, default=256, help="images per batch (default: 256)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers (default: 0)")
    p.add_argument("--threads", type=int, help="torch intra-op CPU threads")
    p.add_argument("--plot", type=Path, help="confusion-matrix PNG (default: next to the "
                   "checkpoint, confusion_<ckpt>_<data>_<split>.png)")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.set_defaults(func=cmd_eval)


def add_training_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` and ``eval`` verbs; each sets ``func`` returning an exit code."""
    _add_train(subparsers)
    _add_eval(subparsers)


def build_parser() -> argparse.ArgumentParser:
    parser = SuggestingParser(prog="python -m classify.cli.train",
                              description="classifier training and evaluation")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_training_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the verb; user errors print one ``error:`` line (exit code 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
