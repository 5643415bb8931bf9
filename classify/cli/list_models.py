"""``classify list [PATTERN]``: the registered models, their input sizes, channels, parameters and weights."""

from __future__ import annotations

import argparse


def cmd_list(args: argparse.Namespace) -> int:
    from classify.models.registry import get_model_entry, list_models

    names = list_models(args.pattern)
    if not names:
        raise ValueError(f"no registered model name contains {args.pattern!r}")
    print(f"{'name':22s} {'input':>5s} {'min':>4s} {'chans':>5s} {'params':>10s}  weights")
    for name in names:
        entry = get_model_entry(name)
        print(f"{name:22s} {entry.input_size:5d} {entry.min_input_size:4d} {entry.in_chans:5d} "
              f"{_param_count(name):>10s}  {', '.join(entry.weights) or '-'}")
    return 0


def _param_count(name: str) -> str:
    """Parameters of the default model, built on the meta device (no memory, milliseconds)."""
    import torch

    from classify.inspect.summary import format_count
    from classify.models.registry import get_model

    with torch.device("meta"):
        model = get_model(name)
    return format_count(sum(p.numel() for p in model.parameters()))


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="registered models: input sizes, channels, parameters, weights")
    p.add_argument("pattern", nargs="?", default="", help="keep names containing this text")
    p.set_defaults(func=cmd_list)
