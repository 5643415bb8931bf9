"""``detect export``: a checkpoint or registry detector as an ONNX or TorchScript file.

Examples::

    detect export runs/detect/quick/best.pt                         # -> runs/detect/quick/best.onnx
    detect export runs/detect/quick/best.pt --format torchscript --out model.torchscript
    detect export --model yolov8n --weights yolov8n.pt --image-size 640 --iou 0.6 --simplify
    detect export best.pt --score-threshold 0.25 --max-det 50 --opset 17
    detect export best.pt --format checkpoint --half --out models/my-model.pt   # float16 weights, half the file

The file holds the whole detector (resize / letterbox, network, NMS) and its metadata; it runs
through the Detector contract again with ``detect.export.load_exported``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_export(args: argparse.Namespace) -> int:
    """Run :func:`detect.tasks.export.run_export` with the parsed arguments."""
    from detect.tasks.export import run_export

    run_export(checkpoint=args.checkpoint, model=args.model, weights=args.weights, fmt=args.format, out=args.out,
               opset=args.opset, image_size=args.image_size, iou=args.iou, score_threshold=args.score_threshold,
               max_det=args.max_det, simplify=args.simplify, check=not args.no_check, device=args.device,
               half=args.half)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a detector as an ONNX or TorchScript file (preprocessing and NMS inside) and check it",
        description="Export a checkpoint written by 'detect train' or a registry detector (--model) to one ONNX or "
                    "TorchScript file: input float32 images [N, 3, H, W] in [0, 1], resize or letterbox, network "
                    "and NMS inside, detections in the input's pixels, metadata (classes, thresholds, versions) "
                    "inside. The file is then run beside eager PyTorch on a synthetic image and the differences "
                    "printed.",
    )
    p.add_argument("checkpoint", type=Path, nargs="?", metavar="CHECKPOINT",
                   help="a checkpoint written by 'detect train' (best.pt/last.pt); or give --model")
    p.add_argument("--model", metavar="NAME", help="registry detector to export instead (see 'detect list')")
    p.add_argument("--weights", type=Path, metavar="PATH", help="local weights for --model (nothing is downloaded)")
    p.add_argument("--format", choices=["onnx", "torchscript", "checkpoint"], default="onnx",
                   help="file format (default onnx); checkpoint: a copy of the checkpoint, with --half in float16")
    p.add_argument("--half", action="store_true",
                   help="with --format checkpoint: store the weights in float16 (half the file; upcast on load)")
    p.add_argument("--out", metavar="PATH",
                   help="file to write, or a folder for the default name (default: beside the checkpoint or "
                        "weights, else runs/export/NAME.onnx)")
    p.add_argument("--opset", type=int, metavar="N", help="ONNX opset, 16 to 20 (default 18)")
    p.add_argument("--image-size", type=int, metavar="N",
                   help="input size instead of the detector's own (R-CNN: short side; YOLO: letterbox side)")
    p.add_argument("--iou", type=float, metavar="X", help="NMS IoU threshold baked into the file (default: the model's)")
    p.add_argument("--score-threshold", type=float, metavar="X",
                   help="score threshold baked into the file (default: the model's); a runtime can only raise it")
    p.add_argument("--max-det", type=int, metavar="N",
                   help="detections kept an image, baked into the file (default: the model's)")
    p.add_argument("--simplify", action="store_true", help="simplify the ONNX graph with onnxslim")
    p.add_argument("--device", default="cpu",
                   help="where a TorchScript file is traced and runs (cpu, cuda, cuda:N; default cpu); ONNX: cpu")
    p.add_argument("--no-check", action="store_true",
                   help="skip onnx.checker and the comparison with eager PyTorch on a synthetic image")
    p.set_defaults(func=cmd_export)
