"""Inference speed, memory and tracking, all in one run (docs/benchmarks/inference.md).

(a) ``throughput`` — model-only throughput (the detector's forward on images already in memory)
    against end-to-end ``detect predict`` (read, decode, forward, draw and write every output) on
    a folder of digit-scenes test images and on a digit-scenes video, at each batch size;
(b) ``backends`` — eager PyTorch against onnxruntime and TorchScript files written by ``detect
    export``: latency an image at batch 1 on the same images, round-robin, and the largest
    difference of the detections;
(c) ``memory`` — resident memory of ``detect predict`` over a long video, sampled after each frame;
(d) ``tracking`` — ``detect predict --track`` on the digit video, scored by ``detect eval-track``.

    python tools/bench_inference.py --checkpoint runs/bench_detect_recipe/recipe/best.pt \\
        --data data/digit-scenes/coco
    python tools/bench_inference.py --checkpoint best.pt --data data/digit-scenes/coco --only tracking

The CPU threads are set with ``--threads`` (default 2); the table, the command and the machine
are written to ``OUT/bench_inference.md`` and the numbers to ``OUT/bench_inference.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

SECTIONS = ("throughput", "backends", "memory", "tracking")


def log(message: str) -> None:
    print(f"[bench_inference] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------- inputs


def image_list(data: Path, count: int, out: Path) -> Path:
    """A text file listing the first ``count`` test images of the COCO digit scenes (``detect predict`` reads it)."""
    images = sorted((data / "images" / "test").iterdir())[:count]
    if len(images) < count:
        raise SystemExit(f"{data}: only {len(images)} test images, asked for {count}")
    path = out / f"test_{count}.txt"
    path.write_text("".join(f"{p.resolve()}\n" for p in images))
    return path


def digit_video(out: Path, frames: int, seed: int = 0) -> Path:
    """The digit-scenes video of ``frames`` frames (rendered once, then reused): its folder."""
    from detect.data.video_config import video_config
    from detect.data.video_scenes import write_video

    folder = out / f"video_{frames}"
    write_video(video_config("small", frames=frames, seed=seed), folder, progress=False)  # 320x240, the scenes' scale
    return folder


# ------------------------------------------------------------------------------- (a) throughput


def model_only_rate(predictor, items: Sequence, batch_size: int) -> float:
    """Images a second of the model's forward alone, over ``items`` decoded beforehand (untimed)."""
    from detect.inference.loop import timed_forward
    from detect.inference.predictor import decode, to_tensor

    seconds, done = 0.0, 0
    for start in range(0, len(items), batch_size):
        batch = [to_tensor(decode(item).image, predictor.device) for item in items[start:start + batch_size]]
        _, elapsed = timed_forward(predictor.model, batch, predictor.device)
        seconds, done = seconds + elapsed, done + len(batch)
    return done / seconds


def video_frames(video: Path, limit: int) -> list:
    from detect.inference.video import VideoReader

    with VideoReader(video) as reader:
        return [frame.image for _, frame in zip(range(limit), reader)]


def throughput(checkpoint: Path, images: Path, video: Path, batch_sizes: Sequence[int], out: Path) -> list[dict]:
    from detect.inference.predictor import Predictor
    from detect.tasks.predict import PredictOptions, run_predict

    paths = [Path(line) for line in images.read_text().splitlines()]
    rows = []
    for source, kind in ((images, "images"), (video, "video")):
        inputs = paths if kind == "images" else video_frames(video, 10**9)
        for batch in batch_sizes:
            predictor = Predictor(checkpoint, batch_size=batch)
            model_only_rate(predictor, inputs[: 2 * batch], batch)  # warm-up
            model_rate = model_only_rate(predictor, inputs, batch)
            del predictor
            run_out = out / f"predict_{kind}_b{batch}"
            shutil.rmtree(run_out, ignore_errors=True)
            summary = run_predict(source, checkpoint, run_out, PredictOptions(batch_size=batch, progress=False))
            rows.append({"input": f"{len(inputs)} {kind}", "batch": batch, "model_only_per_s": model_rate,
                         "end_to_end_per_s": summary.rate, "ratio": summary.rate / model_rate,
                         "mean_ms": summary.as_dict()["mean_time"]})
            log(f"throughput {kind} batch {batch}: model {model_rate:.2f}/s, end to end {summary.rate:.2f}/s")
    return rows


# ------------------------------------------------------------------------------- (b) backends


def bench_models(checkpoint: Path, peer: str, peer_size: int) -> list[tuple[str, object, list[str]]]:
    """(label, module, class names) of (b): the checkpoint's detector (its crop rescorer, which no
    exporter can take, switched off) and the peer at ``peer_size``."""
    import torch

    from detect.inference.model_files import load_model

    device = torch.device("cpu")
    ours = load_model(checkpoint, device=device)
    if getattr(ours.model, "rescorer", None) is not None:
        ours.model.rescorer = None
        label = f"{checkpoint} (rescoring off)"
    else:
        label = str(checkpoint)
    theirs = load_model(peer, device=device, image_size=peer_size)
    return [(label, ours.model, ours.class_names), (f"{peer} {peer_size} px", theirs.model, theirs.class_names)]


def backends(models: Sequence[tuple[str, object, list[str]]], image_paths: Sequence[Path], out: Path,
             rounds: int) -> list[dict]:
    """Latency an image at batch 1, round-robin over eager / onnxruntime / TorchScript of each model,
    every one at score threshold 0.25 (baked into the files: the same NMS work as eager)."""
    from detect.export.exporter import export_detector
    from detect.inference.predictor import Predictor, decode
    from detect.models.postprocess import configure_postprocess
    from detect.tasks.lineage import round_robin_times

    images = [decode(p).image for p in image_paths]
    rows = []
    for i, (label, module, names) in enumerate(models):
        configure_postprocess(module, score_threshold=0.25)
        files = {fmt: export_detector(module, names, out / f"model{i}.{fmt}", fmt).path for fmt in ("onnx", "torchscript")}
        runners = {"eager": Predictor(module, class_names=names, conf=0.25),
                   "onnxruntime": Predictor(files["onnx"], conf=0.25),
                   "torchscript": Predictor(files["torchscript"], conf=0.25)}
        results = {name: runner(images) for name, runner in runners.items()}  # warm-up, and the detections compared
        times = round_robin_times(runners, images, rounds)
        eager_ms = 1000 * statistics.median(times["eager"])
        for name in runners:
            ms = 1000 * statistics.median(times[name])
            rows.append({"model": label, "backend": name, "median_ms": ms, "speedup": eager_ms / ms,
                         "max_box_diff": _max_box_diff(results["eager"], results[name])})
            log(f"backends {label} {name}: {ms:.1f} ms ({eager_ms / ms:.2f}x eager)")
    return rows


def _max_box_diff(reference: Sequence, other: Sequence) -> dict:
    """How far ``other``'s detections are from ``reference``'s: images whose counts or labels differ
    (a detection right at the score threshold can fall on either side), and the largest box
    coordinate difference (pixels) over the others, detections paired by label and position."""
    import numpy as np

    differ, worst = 0, 0.0
    for a, b in zip(reference, other):
        order_a = np.lexsort((a.boxes[:, 1], a.boxes[:, 0], a.labels))
        order_b = np.lexsort((b.boxes[:, 1], b.boxes[:, 0], b.labels))
        if len(a) != len(b) or not np.array_equal(a.labels[order_a], b.labels[order_b]):
            differ += 1
        elif len(a):
            worst = max(worst, float(np.abs(a.boxes[order_a] - b.boxes[order_b]).max()))
    return {"images": len(reference), "differ": differ, "max_px": worst}


# ------------------------------------------------------------------------------- (c) memory


def memory(model: str | Path, video: Path, out: Path, image_size: int | None, marks: Sequence[int]) -> dict:
    """RSS (MiB) after the frames of ``marks`` of a ``detect predict`` run over ``video``."""
    import psutil

    from detect.tasks.predict import PredictOptions, run_predict

    process, rss = psutil.Process(), {}

    def sample(_detections, summary) -> None:
        if summary.processed in marks:
            rss[summary.processed] = process.memory_info().rss / 2**20

    run_out = out / "predict_memory"
    shutil.rmtree(run_out, ignore_errors=True)
    summary = run_predict(video, model, run_out, PredictOptions(image_size=image_size, progress=False), on_result=sample)
    first, last = rss[marks[0]], rss[marks[-1]]
    log(f"memory: {first:.0f} MiB at frame {marks[0]}, {last:.0f} MiB at frame {marks[-1]}")
    return {"model": str(model), "frames": summary.processed, "rss_mib": rss, "growth": (last - first) / first,
            "per_s": summary.rate}


# ------------------------------------------------------------------------------- (d) tracking


def tracking(checkpoint: Path, video_folder: Path, out: Path, batch: int) -> dict:
    from detect.tasks.predict import PredictOptions, run_predict
    from detect.tasks.track_eval import run_track_eval

    run_out = out / "track"
    shutil.rmtree(run_out, ignore_errors=True)
    summary = run_predict(video_folder / "video.mp4", checkpoint, run_out,
                          PredictOptions(track=True, batch_size=batch, progress=False))
    metrics = run_track_eval(video_folder, run_out, out / "track_eval").metrics()
    log(f"tracking: {metrics}")
    return {"frames": summary.processed, "per_s": summary.rate, "metrics": metrics}


# ------------------------------------------------------------------------------- report


def machine() -> str:
    import torch

    return (f"{platform.machine()} CPU, {torch.get_num_threads()} torch thread(s) | torch {torch.__version__} | "
            f"python {platform.python_version()}")


def markdown(results: dict, command: str) -> str:
    lines = [f"`{command}`", "", f"{results['date']} | {results['machine']}", ""]
    if "throughput" in results:
        lines += ["| input | batch | model only /s | end to end /s | ratio | decode / pre / model / post ms |",
                  "|---|---|---|---|---|---|"]
        for r in results["throughput"]:
            ms = " / ".join(f"{r['mean_ms'][f'{s}_ms']:.1f}" for s in ("decode", "preprocess", "model", "postprocess"))
            lines.append(f"| {r['input']} | {r['batch']} | {r['model_only_per_s']:.2f} | {r['end_to_end_per_s']:.2f} | "
                         f"{r['ratio']:.2f}x | {ms} |")
        lines.append("")
    if "backends" in results:
        lines += ["| model | backend | median ms/img (batch 1) | speed-up vs eager | largest box difference px |",
                  "|---|---|---|---|---|"]
        for r in results["backends"]:
            d = r["max_box_diff"]
            diff = f"{d['max_px']:.1e}" + (f" ({d['differ']} of {d['images']} images differ in count)" if d["differ"] else "")
            lines.append(f"| {r['model']} | {r['backend']} | {r['median_ms']:.1f} | {r['speedup']:.2f}x | {diff} |")
        lines.append("")
    if "memory" in results:
        m = results["memory"]
        marks = ", ".join(f"frame {k}: {v:.0f} MiB" for k, v in m["rss_mib"].items())
        lines += [f"RSS over {m['frames']} frames ({m['model']}, {m['per_s']:.1f} frames/s): {marks}; "
                  f"growth {100 * m['growth']:+.2f}%", ""]
    if "tracking" in results:
        t, m = results["tracking"], results["tracking"]["metrics"]
        keys = [k for k in ("MOTA", "IDF1", "HOTA", "IDSW", "MOTP", "DetA", "AssA") if k in m]
        lines += ["| frames | frames/s | " + " | ".join(keys) + " |", "|---" * (len(keys) + 2) + "|",
                  f"| {t['frames']} | {t['per_s']:.2f} | " + " | ".join(_fmt(m[k]) for k in keys) + " |", ""]
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="the detector of (a), (b) and (d)")
    p.add_argument("--data", type=Path, default=ROOT / "data/digit-scenes/coco", help="COCO digit scenes (test images)")
    p.add_argument("--out", type=Path, default=ROOT / "runs/bench_inference")
    p.add_argument("--images", type=int, default=500, help="test images of (a) (default 500)")
    p.add_argument("--frames", type=int, default=2000, help="frames of the video of (a) and (d) (default 2000)")
    p.add_argument("--memory-frames", type=int, default=10000, help="frames of the video of (c) (default 10000)")
    p.add_argument("--batch-size", type=int, nargs="+", default=[1, 8], help="batch sizes of (a) (default 1 8)")
    p.add_argument("--peer", default="yolov8n", help="registry model beside the checkpoint in (b) and alone in (c)")
    p.add_argument("--peer-size", type=int, default=320, help="input size of the peer (default 320)")
    p.add_argument("--rounds", type=int, default=3, help="timed passes over the images of (b) (default 3)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"date": time.strftime("%Y-%m-%d"), "machine": machine()}
    steps: dict[str, Callable[[], object]] = {
        "throughput": lambda: throughput(args.checkpoint, image_list(args.data, args.images, args.out),
                                         digit_video(args.out, args.frames) / "video.mp4", args.batch_size, args.out),
        "backends": lambda: backends(bench_models(args.checkpoint, args.peer, args.peer_size),
                                     [Path(x) for x in image_list(args.data, 20, args.out).read_text().splitlines()],
                                     args.out, args.rounds),
        "memory": lambda: memory(args.peer, digit_video(args.out, args.memory_frames) / "video.mp4", args.out,
                                 args.peer_size, (1000, args.memory_frames)),
        "tracking": lambda: tracking(args.checkpoint, digit_video(args.out, args.frames), args.out,
                                     max(args.batch_size)),
    }
    for name in args.only:
        results[name] = steps[name]()
        (args.out / "bench_inference.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    command = "python tools/bench_inference.py " + " ".join(argv if argv is not None else sys.argv[1:])
    (args.out / "bench_inference.md").write_text(markdown(results, command) + "\n")
    print(markdown(results, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
