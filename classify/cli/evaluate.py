"""``classify eval CHECKPOINT``: top-1/top-5 and per-class accuracy of a checkpoint, and its
confusion matrix as a PNG.

    classify eval runs/classify/lenet5_fashion/best.pt [--data fashion] [--split test] [--plot cm.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_eval(args: argparse.Namespace) -> int:
    """Score a checkpoint, print top-1/top-5 and per-class accuracy, write the confusion PNG."""
    import torch

    from classify.engine.plots import plot_confusion
    from classify.engine.trainer import evaluate_checkpoint

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


def add_parser(sub: argparse._SubParsersAction) -> None:
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
