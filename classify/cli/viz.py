"""``classify viz MODEL_OR_CHECKPOINT``: first-layer filters and the feature maps of a stage."""

from __future__ import annotations

import argparse
from pathlib import Path

from classify.base.paths import require_file


def cmd_viz(args: argparse.Namespace) -> int:
    from classify.inspect.filters import default_image
    from classify.inspect.viz import load_model, prepare_image, save_feature_maps, save_filter_grid
    from classify.models.registry import get_model_entry

    image_path = args.image or default_image()
    require_file(image_path, "image")  # fail before the (slower) model build
    model, name = load_model(args.model, args.weights)
    entry = get_model_entry(name)
    mean, std = entry.mean, entry.std
    if model.in_chans != len(mean):  # a rebuilt stem: one value per channel
        mean, std = (sum(mean) / len(mean),) * model.in_chans, (sum(std) / len(std),) * model.in_chans
    x, shown = prepare_image(image_path, entry.input_size, mean, std, model.in_chans)
    stage = args.stage or model.feature_info[0].name
    stem = Path(args.model).stem if Path(args.model).is_file() else name
    maps_png = save_feature_maps(model, x, stage, args.out / f"{stem}_{stage}.png",  # checks the stage first
                                 channels=args.channels, display=shown)
    filters_png = save_filter_grid(model, args.out / f"{stem}_filters.png")
    print(f"wrote {filters_png}\nwrote {maps_png}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
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
