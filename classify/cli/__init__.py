"""``classify`` command line: list the zoo, summarise a model, classic filters, visualisation.

    classify list [PATTERN]
    classify summary MODEL [--input-size C H W] [--num-classes N] [--depth D] [--format table|markdown|json]
    classify filters [IMAGE] [--filters sobel_x,laplacian4,...] [--sigma S] [--border reflect] [--out PNG]
    classify viz MODEL_OR_CHECKPOINT [--weights W] [--image PATH] [--stage NAME] [--channels N] [--out DIR]

Every user error ends in one ``error: ...`` line on stderr and exit code 2, never a traceback.
Each verb is added by one function taking the sub-parsers object and sets ``func``, a
``(argparse.Namespace) -> int`` command; :func:`add_subcommands` adds them all.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from classify.base.cli import SuggestingParser

__all__ = ["EXIT_USAGE", "add_subcommands", "build_parser", "main", "run_command"]

EXIT_USAGE = 2
_USER_ERRORS = (ValueError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError,
                IsADirectoryError, PermissionError)


# -- list ------------------------------------------------------------------------------------

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

    from classify.models.registry import get_model
    from classify.inspect.summary import format_count

    with torch.device("meta"):
        model = get_model(name)
    return format_count(sum(p.numel() for p in model.parameters()))


def _add_list(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="registered models: input sizes, channels, parameters, weights")
    p.add_argument("pattern", nargs="?", default="", help="keep names containing this text")
    p.set_defaults(func=cmd_list)


# -- summary ---------------------------------------------------------------------------------

def cmd_summary(args: argparse.Namespace) -> int:
    import torch

    from classify.models.registry import get_model, get_model_entry
    from classify.inspect.summary import summarize

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


def _add_summary(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="per-layer shapes, parameters, MACs and FLOPs of a model",
                       description="Per-layer output shapes, parameters, MACs and FLOPs "
                       "(2 x MACs) of one forward pass of one image; counted on the meta device.")
    p.add_argument("model", help="registry name (see 'classify list')")
    p.add_argument("--input-size", type=int, nargs=3, metavar=("C", "H", "W"),
                   help="input channels and pixels (default: the model's native size)")
    p.add_argument("--num-classes", type=int, help="logits (default: the model's native count)")
    p.add_argument("--depth", type=int, default=3,
                   help="rows for modules this many levels deep (default: 3; 0: every leaf)")
    p.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    p.set_defaults(func=cmd_summary)


# -- filters ---------------------------------------------------------------------------------

def cmd_filters(args: argparse.Namespace) -> int:
    from classify.inspect.filters import apply_filters, default_image, filter_figure, load_grayscale

    image_path = args.image or default_image()
    names = [n.strip() for n in args.filters.split(",") if n.strip()] if args.filters else None
    image = load_grayscale(image_path)
    results = apply_filters(image, names, sigma=args.sigma, border=args.border)
    out = filter_figure(image, results, args.out)
    print(f"{image_path}: {image.shape[-1]}x{image.shape[-2]} px, {len(results)} filters")
    for name, response in results.items():
        print(f"  {name:16s} min {float(response.min()):+8.3f}  max {float(response.max()):+8.3f}"
              f"  mean |r| {float(response.abs().mean()):.4f}")
    print(f"wrote {out}")
    return 0


def _add_filters(sub: argparse._SubParsersAction) -> None:
    from classify.inspect.kernels import BORDERS, list_filters

    p = sub.add_parser("filters", help="classic kernels (Sobel, Laplacian, ...) on a grayscale photo")
    p.add_argument("image", nargs="?", type=Path,
                   help="image file (default: an OpenCV sample photo, else ultralytics' bus.jpg)")
    p.add_argument("--filters", help=f"comma-separated names (default: all): {','.join(list_filters())}")
    p.add_argument("--sigma", type=float, default=1.0, help="Gaussian sigma in pixels (default: 1)")
    p.add_argument("--border", choices=list(BORDERS), default="reflect")
    p.add_argument("--out", type=Path, default=Path("runs/filters/filters.png"))
    p.set_defaults(func=cmd_filters)


# -- viz -------------------------------------------------------------------------------------

def cmd_viz(args: argparse.Namespace) -> int:
    from classify.inspect.filters import default_image
    from classify.models.registry import get_model_entry
    from classify.inspect.viz import load_model, prepare_image, save_feature_maps, save_filter_grid

    image_path = args.image or default_image()
    if not Path(image_path).is_file():  # fail before the (slower) model build
        raise FileNotFoundError(f"image not found: {image_path}")
    model, name = load_model(args.model, args.weights)
    entry = get_model_entry(name)
    mean, std = entry.mean, entry.std
    if model.in_chans != len(mean):  # a rebuilt stem: one value per channel
        mean, std = (sum(mean) / len(mean),) * model.in_chans, (sum(std) / len(std),) * model.in_chans
    x, shown = prepare_image(image_path, entry.input_size, mean, std, model.in_chans)
    stage = args.stage or model.feature_info[0].name
    stem = Path(args.model).stem if Path(args.model).is_file() else name
    filters_png = save_filter_grid(model, args.out / f"{stem}_filters.png")
    maps_png = save_feature_maps(model, x, stage, args.out / f"{stem}_{stage}.png",
                                 channels=args.channels, display=shown)
    print(f"wrote {filters_png}\nwrote {maps_png}")
    return 0


def _add_viz(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("viz", help="first-layer filters and feature maps of a model or checkpoint",
                       description="Save the first convolution's filters and the first maps of "
                       "one features() stage as PNGs. MODEL is a registry name or a checkpoint "
                       "file whose config names the model ('model', 'num_classes', 'in_chans').")
    p.add_argument("model", help="registry name or checkpoint file")
    p.add_argument("--weights", help="for a registry name: packaged tag (e.g. imagenet) or file")
    p.add_argument("--image", type=Path, help="input photo (default: an OpenCV sample photo)")
    p.add_argument("--stage", help="features() stage to show (default: the first)")
    p.add_argument("--channels", type=int, default=16, help="feature maps shown (default: 16)")
    p.add_argument("--out", type=Path, default=Path("runs/viz"), help="output folder")
    p.set_defaults(func=cmd_viz)


# -- wiring ----------------------------------------------------------------------------------

def add_subcommands(sub: argparse._SubParsersAction) -> None:
    """Add the inspection verbs (``list``, ``summary``, ``filters``, ``viz``) and ``train``/``eval``."""
    from classify.cli.train import add_training_parsers

    _add_list(sub)
    _add_summary(sub)
    _add_filters(sub)
    _add_viz(sub)
    add_training_parsers(sub)


def build_parser() -> argparse.ArgumentParser:
    """The ``classify`` parser; every verb stores its command in ``args.func``."""
    parser = SuggestingParser(prog="classify", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_subcommands(sub)
    return parser


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run one verb, turning user errors into one ``error: ...`` line and exit code 2."""
    try:
        return func(args)
    except _USER_ERRORS as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # the reader went away (`classify list | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)
