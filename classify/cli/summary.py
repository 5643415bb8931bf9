"""``classify summary MODEL``: per-layer shapes, parameters, MACs and FLOPs of one forward pass."""

from __future__ import annotations

import argparse
import sys


def cmd_summary(args: argparse.Namespace) -> int:
    import torch

    from classify.inspect.summary import summarize
    from classify.models.registry import get_model, get_model_entry

    entry = get_model_entry(args.model)
    size = tuple(args.input_size or (entry.in_chans, entry.input_size, entry.input_size))
    if min(size[1:]) < entry.min_input_size:
        raise ValueError(f"{args.model} needs inputs of at least {entry.min_input_size}x"
                         f"{entry.min_input_size} px, got --input-size {' '.join(map(str, size))}")
    with torch.device("meta"):  # shapes only: no weights allocated, no arithmetic done
        model = get_model(args.model, num_classes=args.num_classes, in_chans=size[0])
    result = summarize(model, size, depth=args.depth or None, name=args.model)
    if args.format == "json":
        print(result.to_json())
    elif args.format == "markdown":
        print(result.to_markdown(), end="")
    else:
        from rich.console import Console

        console = Console() if sys.stdout.isatty() else Console(width=160, no_color=True)
        console.print(result.to_rich_table())
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="per-layer shapes, parameters, MACs and FLOPs of a model",
                       description="Per-layer output shapes, parameters, MACs and FLOPs "
                       "(2 x MACs) of one forward pass of one image; counted on the meta device.")
    p.add_argument("model", help="registry name (see 'classify list')")
    p.add_argument("--input-size", type=int, nargs=3, metavar=("C", "H", "W"),
                   help="input channels and pixels (default: the model's native size)")
    p.add_argument("--num-classes", type=int, help="logits (default: the model's native count)")
    p.add_argument("--depth", type=int, default=3,
                   help="rows for modules this many levels deep (default: 3; 0: every leaf)")
    p.add_argument("--format", choices=("table", "markdown", "json"), default="table",
                   help="a terminal table, Markdown or JSON (default: table)")
    p.set_defaults(func=cmd_summary)
