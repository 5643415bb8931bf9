"""The YOLO family side by side on the digit scenes: same image size, same CPU budget, one table.

Every model trains for the same budget of minutes on the same torch threads (default: 60 minutes
on 2 threads; the classifier pretraining that a recipe starts from counts in its budget), then
each best.pt is measured in one loop at the end, so the latency columns share the machine's
state:

``yolov1``       YOLOv1 (Redmon et al. 2016), configs/detect/train_yolov1.yaml
``yolov3``       our v3-style, k-means anchors, configs/detect/train_yolov3.yaml
``yolo_af``      our anchor-free head (PAN, TAL, DFL, CIoU), configs/detect/train_yolo_af.yaml
``yolov8n``      ultralytics YOLOv8n from its YAML, trained by ultralytics' trainer through
                 ``detect train`` (configs/detect/train_yolov8n.yaml)
``yolo11n``      the same for YOLO11n (configs/detect/train_yolo11n.yaml)
``faster_rcnn``  the Faster R-CNN recipe, for reference (configs/detect/train_recipe.yaml)

Columns: test mAP50, mAP50-95, APs/APm/APl (pycocotools, the test report of ``detect train``),
parameters, GFLOPs at the input size, and median CPU latency an image at batch 1 through the
Predictor, eager PyTorch and onnxruntime (:mod:`detect.tasks.lineage`).

    python tools/bench_yolo.py                           # pretrain, train all six, measure (~6.5 h)
    python tools/bench_yolo.py --only yolov1 yolov3      # (re)train these; the others are reused
    python tools/bench_yolo.py --measure                 # no training: measure finished runs, table
    python tools/bench_yolo.py --budget 20 --out runs/bench_yolo_20   # a shorter budget
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import torch  # noqa: E402

from classify.base.config import load_config  # noqa: E402
from detect.tasks.recipe import RECIPE_CROPS, RECIPE_PRESET, detector_config, pretrain_backbone  # noqa: E402

CONFIGS = ROOT / "configs" / "detect"


@dataclass(frozen=True)
class Entry:
    preset: Path
    pretrained: bool  # starts from the classifier pretrained on the scenes' digit crops
    label: str


MODELS = {
    "yolov1": Entry(CONFIGS / "train_yolov1.yaml", True, "YOLOv1 (ours)"),
    "yolov3": Entry(CONFIGS / "train_yolov3.yaml", True, "YOLOv3-style (ours)"),
    "yolo_af": Entry(CONFIGS / "train_yolo_af.yaml", True, "anchor-free PAN/TAL/DFL (ours)"),
    "yolov8n": Entry(CONFIGS / "train_yolov8n.yaml", False, "ultralytics YOLOv8n"),
    "yolo11n": Entry(CONFIGS / "train_yolo11n.yaml", False, "ultralytics YOLO11n"),
    "faster_rcnn": Entry(RECIPE_PRESET, True, "Faster R-CNN recipe (reference)"),
}
OURS = ("yolov1", "yolov3", "yolo_af")


def log(message: str) -> None:
    print(f"[bench_yolo] {message}", file=sys.stderr, flush=True)


def pretrain(data: Path, out: Path, threads: int) -> dict:
    """The classifier the pretrained recipes start from, trained once (reused when present)."""
    meta_path = out / "pretrain.json"
    if meta_path.is_file():
        return json.loads(meta_path.read_text())
    pre = pretrain_backbone(data, out, overrides={"threads": threads, "device": "cpu"}, crops=RECIPE_CROPS, log=log)
    meta = {"weights": str(pre.weights), "minutes": pre.minutes, "val_top1": pre.val_top1, "threads": threads}
    meta_path.write_text(json.dumps(meta, indent=2))
    return meta


def train(name: str, data: Path, out: Path, budget: float, threads: int, pre: dict | None) -> None:
    """One run of ``name``'s preset for ``budget`` minutes (less the pretraining's when it uses it)."""
    from detect.engine.config import DetectTrainConfig
    from detect.engine.trainer import fit

    entry = MODELS[name]
    minutes = budget - (pre["minutes"] if pre else 0.0)
    overrides = {"data": str(data), "output": str(out / name), "time_budget_min": minutes, "threads": threads,
                 "device": "cpu", "exist_ok": True, "progress": False}
    config = (detector_config(entry.preset, pre["weights"], overrides) if pre
              else load_config(DetectTrainConfig, entry.preset, overrides))
    log(f"training {name} for {minutes:.1f} min on {threads} threads -> {out / name}")
    fit(config)


def measure(name: str, out: Path, data: Path, images: int, rounds: int) -> dict | None:
    """Accuracy, size, GFLOPs and latency of a finished run (``None`` if it has no test report)."""
    from detect.data.formats import load_split
    from detect.data.image_io import read_image
    from detect.models.loading import load_detector
    from detect.tasks.lineage import backend_latency, model_cost, run_test_metrics

    run = out / name
    metrics = run_test_metrics(run)
    if metrics is None:
        log(f"{name}: no finished run under {run}; skipped")
        return None
    history = json.loads((run / "history.json").read_text())
    model, class_names = load_detector(run / "best.pt", "cpu")
    size = _image_size(run)
    cost = model_cost(model, size)
    split = load_split(data, "test")
    pictures = [read_image(split.image_path(r)).float() / 255 for r in split.images[:images]]
    latency = backend_latency(model, class_names, pictures, out / "export" / name, rounds=rounds)
    last = history["epochs"][-1] if history.get("epochs") else {}
    log(f"{name}: AP50 {metrics['AP50']:.3f} AP {metrics['AP']:.3f}; {latency.median_ms}")
    return {"name": name, "label": MODELS[name].label, "image_size": size, "metrics": metrics,
            "params": cost.params, "gflops": cost.gflops, "latency_ms": latency.median_ms,
            "skipped": latency.skipped, "train_minutes": last.get("minutes"), "iterations": last.get("iteration")}


def _image_size(run: Path) -> int:
    import yaml

    return int(yaml.safe_load((run / "config.yaml").read_text())["image_size"])


def table(rows: list[dict], pre: dict | None, budget: float) -> str:
    head = ("| model | input px | test mAP50 | mAP50-95 | APs | APm | APl | params (M) | GFLOPs | "
            "CPU ms eager | CPU ms onnxruntime |")
    lines = [head, "| --- |" + " ---: |" * 10]
    for r in rows:
        m, ms = r["metrics"], r["latency_ms"]
        ort = f"{ms['onnxruntime']:.1f}" if "onnxruntime" in ms else "n/a"
        lines.append(f"| {r['label']} | {r['image_size']} | {m['AP50']:.3f} | {m['AP']:.3f} | {m.get('APs', 0):.3f} | "
                     f"{m.get('APm', 0):.3f} | {m.get('APl', 0):.3f} | {r['params'] / 1e6:.2f} | {r['gflops']:.2f} | "
                     f"{ms['eager']:.1f} | {ort} |")
    notes = [f"Budget {budget:g} CPU minutes a model"
             + (f", {pre['minutes']:.1f} of them pretraining the ResNet-18 classifier for the pretrained recipes"
                if pre else "") + "."]
    notes += [f"{r['label']}: onnxruntime not measured: {reason}" for r in rows
              for backend, reason in r["skipped"].items()]
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def verdicts(rows: list[dict]) -> list[str]:
    """The issue-level targets, checked on the measured rows."""
    by = {r["name"]: r for r in rows}
    lines = []
    ours = [by[n] for n in OURS if n in by]
    if ours and "yolov8n" in by:
        best = max(ours, key=lambda r: r["metrics"]["AP"])
        v8 = by["yolov8n"]
        lines.append(f"best own YOLO {best['name']}: mAP50-95 {best['metrics']['AP']:.3f} vs YOLOv8n "
                     f"{v8['metrics']['AP']:.3f}; eager latency {best['latency_ms']['eager']:.1f} vs "
                     f"{v8['latency_ms']['eager']:.1f} ms ({v8['latency_ms']['eager'] / best['latency_ms']['eager']:.2f}x)")
    if "yolov1" in by:
        lines.append(f"YOLOv1 mAP50 {by['yolov1']['metrics']['AP50']:.3f} (target >= 0.60)")
    return lines


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=ROOT / "data/digit-scenes/coco")
    p.add_argument("--out", type=Path, default=ROOT / "runs/bench_yolo")
    p.add_argument("--budget", type=float, default=60.0, help="CPU minutes a model, pretraining included (default 60)")
    p.add_argument("--threads", type=int, default=2, help="torch threads of every step (default 2)")
    p.add_argument("--only", nargs="+", choices=list(MODELS), help="train only these (default: all)")
    p.add_argument("--measure", action="store_true", help="no training: measure the finished runs")
    p.add_argument("--images", type=int, default=50, help="test images of the latency loop (default 50)")
    p.add_argument("--rounds", type=int, default=3, help="passes of the latency loop (default 3)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    names = args.only or list(MODELS)
    pre = None
    if not args.measure:
        if any(MODELS[n].pretrained for n in names):
            pre = pretrain(args.data, args.out, args.threads)
        for name in names:
            train(name, args.data, args.out, args.budget, args.threads, pre if MODELS[name].pretrained else None)
    pre_path = args.out / "pretrain.json"
    pre = json.loads(pre_path.read_text()) if pre_path.is_file() else None
    rows = [r for r in (measure(n, args.out, args.data, args.images, args.rounds) for n in MODELS) if r]
    if not rows:
        raise SystemExit(f"no finished runs under {args.out}")
    text = (f"Digit-scenes test split (500 images), {date.today()}, {machine()}.\n\n" + table(rows, pre, args.budget)
            + "\n" + "\n".join(f"- {v}" for v in verdicts(rows)) + "\n")
    (args.out / "bench.md").write_text(text)
    (args.out / "bench.json").write_text(json.dumps({"rows": rows, "pretrain": pre, "budget": args.budget}, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
