"""``classify filters [IMAGE]``: classic kernels (Sobel, Laplacian, ...) applied to a grayscale photo."""

from __future__ import annotations

import argparse
from pathlib import Path


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


def add_parser(sub: argparse._SubParsersAction) -> None:
    from classify.inspect.kernels import BORDERS, list_filters

    p = sub.add_parser("filters", help="classic kernels (Sobel, Laplacian, ...) on a grayscale photo")
    p.add_argument("image", nargs="?", type=Path,
                   help="image file (default: an OpenCV sample photo, else ultralytics' bus.jpg)")
    p.add_argument("--filters", help=f"comma-separated names (default: all): {','.join(list_filters())}")
    p.add_argument("--sigma", type=float, default=1.0, help="Gaussian sigma in pixels (default: 1)")
    p.add_argument("--border", choices=list(BORDERS), default="reflect",
                   help="how the image is padded at its border (default: reflect)")
    p.add_argument("--out", type=Path, default=Path("runs/filters/filters.png"),
                   help="the figure's PNG file (default: runs/filters/filters.png)")
    p.set_defaults(func=cmd_filters)
