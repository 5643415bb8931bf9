"""``detect eval``: score detections (a results file, or a registry model run here) against a dataset.

Examples::

    detect eval data/digit-scenes/coco --split val --predictions runs/predict/results.json
    detect eval data/digit-scenes/yolo/data.yaml --split val --predictions runs/detect/predict/labels
    detect eval data/digit-scenes/coco --split val --model yolov8n --weights best.pt --image-size 320
    detect eval data/digit-scenes/coco --split test --checkpoint runs/detect/quick/best.pt
    detect eval GT --predictions results.json --backend faster-coco-eval --compare-ultralytics

"""

from __future__ import annotations

import argparse
from pathlib import Path

from detect.evaluation.backends import BACKENDS


def cmd_eval(args: argparse.Namespace) -> int:
    """Run :func:`detect.tasks.evaluate.run_evaluation` with the parsed arguments."""
    from detect.tasks.evaluate import run_evaluation

    run_evaluation(
        gt=args.gt,
        split=args.split,
        fmt=args.format,
        predictions=args.predictions,
        model=args.model,
        checkpoint=args.checkpoint,
        weights=args.weights,
        image_size=args.image_size,
        out_dir=args.out,
        backend=args.backend,
        iou=args.iou,
        score_threshold=args.score_threshold,
        compare_ultralytics=args.compare_ultralytics,
        num_examples=args.examples,
        device=args.device,
        batch_size=args.batch_size,
        predictions_format=args.predictions_format,
    )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="score detections against a dataset: COCO/VOC mAP, P/R/F1, confusion matrix, plots",
        description="Score detections of one split against its ground truth: from a results file, a "
                    "registry detector or a checkpoint written by 'detect train'.",
    )
    p.add_argument("gt", type=Path, metavar="GT",
                   help="ground truth (COCO json or folder, VOC folder, YOLO data.yaml or folder)")
    p.add_argument("--split", help="split to evaluate (default: val, else test, else train)")
    p.add_argument("--format", choices=["coco", "voc", "yolo"], help="ground-truth format (default: detected)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--predictions", type=Path, metavar="PATH",
                        help="COCO results .json, or a folder of YOLO <image stem>.txt (save_txt + save_conf)")
    source.add_argument("--model", metavar="NAME", help="registry detector to run over the split (see 'detect list')")
    source.add_argument("--checkpoint", type=Path, metavar="PATH",
                        help="a checkpoint written by 'detect train' (best.pt/last.pt), or a file written by "
                             "'detect export' (ONNX, TorchScript), run over the split")
    p.add_argument("--predictions-format", choices=["coco", "yolo"], help="format of --predictions (default: detected)")
    p.add_argument("--weights", type=Path, metavar="PATH", help="local weights for --model (nothing is downloaded)")
    p.add_argument("--image-size", type=int, nargs="+", metavar="N",
                   help="input size for --model; with --checkpoint, run it at this size instead of its own, "
                        "or at several sizes merged by per-class NMS (a Faster R-CNN multi-size test)")
    p.add_argument("--out", type=Path, default=Path("runs/eval"), metavar="DIR", help="output folder (default: runs/eval)")
    p.add_argument("--backend", choices=list(BACKENDS), default="pycocotools", help="COCO mAP backend")
    p.add_argument("--iou", type=float, default=0.5, help="IoU threshold of P/R/F1 and the confusion matrix (default 0.5)")
    p.add_argument("--score-threshold", type=float, default=0.25,
                   help="score threshold of P/R/F1, the confusion matrix and the examples (default 0.25; mAP uses every score)")
    p.add_argument("--compare-ultralytics", action="store_true",
                   help="also compute ultralytics' metrics on the same detections and explain the differences")
    p.add_argument("--examples", type=int, default=8, metavar="N", help="images drawn in examples.png (default 8; 0: none)")
    p.add_argument("--device", default="cpu", help="device for --model (cpu, cuda, cuda:N)")
    p.add_argument("--batch-size", type=int, default=8, help="batch size for --model (default 8)")
    p.set_defaults(func=cmd_eval)
