"""``detect predict`` and ``detect track``: run a detector on images, folders, globs, lists, videos
(and, when asked, a camera or stream) and write annotated media, JSON lines, COCO results, YOLO txt.

Examples::

    detect predict street.jpg --checkpoint runs/detect/recipe/best.pt
    detect predict data/digit-scenes/coco/test --checkpoint best.pt --out runs/predict/test
    detect predict "photos/**/*.jpg" --model yolov8n --weights yolov8n.pt --classes person car
    detect predict clip.mp4 --checkpoint model.onnx --stride 2 --batch-size 8
    detect track clip.mp4 --checkpoint best.pt          # = detect predict --track
    detect predict 0 --stream --checkpoint best.pt      # camera 0 (only with --stream)

"""

from __future__ import annotations

import argparse
from pathlib import Path

from classify.base.cli import EXIT_FAILED

#: containers of the annotated video (those OpenCV writes here; detect.inference.video.VIDEO_CODECS)
VIDEO_FORMATS = ("mp4", "avi", "webm")


def cmd_predict(args: argparse.Namespace, track: bool = False) -> int:
    """Run :func:`detect.tasks.predict.run_predict` with the parsed arguments; 1 if any input failed."""
    from detect.inference.tracking import TrackerConfig
    from detect.tasks.predict import PredictOptions, run_predict

    options = PredictOptions(
        conf=args.conf, iou=args.iou, max_det=args.max_det, classes=args.classes, image_size=args.image_size,
        batch_size=args.batch_size, stride=args.stride, device=args.device, backend=args.backend,
        weights=args.weights, track=track or args.track, stream=args.stream, annotate=not args.no_annotate,
        save_txt=not args.no_txt, save_crops=args.save_crops, video_format=args.video_format,
        progress=not args.no_progress,
        tracker=TrackerConfig(lost_frames=args.track_buffer),
    )
    model = args.model if args.model is not None else args.checkpoint
    summary = run_predict(args.source, model, args.out, options)
    print(summary.describe())
    return EXIT_FAILED if summary.failed else 0


def _add_arguments(p: argparse.ArgumentParser, default_out: str) -> None:
    p.add_argument("source", metavar="SOURCE",
                   help="an image, a folder (searched recursively, images found by content), a glob in quotes, "
                        "a .txt list of paths, a video, or with --stream a camera index or stream URL")
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--model", metavar="NAME", help="registry detector (see 'detect list')")
    model.add_argument("--checkpoint", type=Path, metavar="PATH",
                       help="a 'detect train' checkpoint, or a file written by 'detect export' (ONNX, TorchScript)")
    p.add_argument("--weights", type=Path, metavar="PATH", help="local weights for --model (nothing is downloaded)")
    p.add_argument("--out", type=Path, default=Path(default_out), metavar="DIR", help=f"output folder (default: {default_out})")
    p.add_argument("--conf", type=float, default=0.25, help="score threshold (default 0.25)")
    p.add_argument("--iou", type=float, help="NMS IoU threshold (default: the model's)")
    p.add_argument("--max-det", type=int, help="detections kept an image (default: the model's)")
    p.add_argument("--classes", nargs="+", metavar="CLASS", help="keep only these classes (names or 0-based indices)")
    p.add_argument("--image-size", type=int, metavar="N", help="input size instead of the model's own")
    p.add_argument("--batch-size", type=int, default=1, help="images or frames a model call (default 1)")
    p.add_argument("--stride", type=int, default=1, help="video: keep every N-th frame (default 1)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    p.add_argument("--backend", choices=["torch", "onnxruntime", "torchscript"],
                   help="how to run the model (default: read from the file)")
    p.add_argument("--track", action="store_true", help="video: follow objects across frames (ByteTrack) and "
                   "write their ids to the JSON lines, the video and tracks.txt")
    p.add_argument("--track-buffer", type=int, default=30, metavar="N",
                   help="frames a lost track is kept (default 30)")
    p.add_argument("--stream", action="store_true", help="allow SOURCE to be a camera index or a stream URL "
                   "(off by default: nothing is opened that was not asked for)")
    p.add_argument("--save-crops", action="store_true", help="also cut each object out to OUT/crops/<class>/")
    p.add_argument("--no-annotate", action="store_true", help="do not write annotated images or video")
    p.add_argument("--no-txt", action="store_true", help="do not write YOLO txt labels")
    p.add_argument("--video-format", choices=VIDEO_FORMATS, help="annotated video container (default: the input's, "
                   "else mp4)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="run a detector on images, folders, globs, videos; write annotated "
                       "media, JSON lines, COCO results, YOLO txt",
                       description="Run a detector on SOURCE and write the results under --out as they come: "
                       "annotated images or video, predictions.jsonl, results.json (COCO), labels/ (YOLO txt), "
                       "summary.json. Unreadable inputs are skipped with one line each; the exit status is 1 "
                       "if any failed.")
    _add_arguments(p, "runs/predict")
    p.set_defaults(func=cmd_predict)
    t = sub.add_parser("track", help="detect and track objects in a video (= detect predict --track)",
                       description="Detect objects in a video and follow them with ByteTrack: ids in "
                       "predictions.jsonl, the annotated video and tracks.txt (MOTChallenge; "
                       "'detect eval-track' scores it).")
    _add_arguments(t, "runs/track")
    t.set_defaults(func=lambda args: cmd_predict(args, track=True))
