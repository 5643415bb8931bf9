"""Time to accuracy on the CPU: our Faster R-CNN recipe against torchvision's default recipe.

Both runs get the same budget of training minutes with the same torch threads (``--threads``,
default 2: the two cores of the issue's machine, which the run should have to itself; 1: wall
minutes are CPU minutes; validation and test scoring are not counted) on the digit-scenes
benchmark:

``recipe``  the whole "train a classifier backbone, then detect" path, every step timed:
            ``detect data crops`` of the train/val scenes, ``classify train`` of ResNet-18 on
            the crops (configs/classify/classify_resnet18_digit_crops.yaml), then ``detect
            train`` with configs/detect/train_recipe.yaml for what is left of the budget.
``tv``      configs/detect/train_tv_default.yaml: torchvision's reference recipe for
            ``fasterrcnn_mobilenet_v3_large_fpn`` from scratch, stopped by the same budget.

The test split is scored every ``--eval-every`` iterations of each detector run; the table gives
test mAP50 and mAP50-95 (COCO, pycocotools) at fixed CPU-minute marks and at the end, and
``curve.png`` draws both against CPU minutes.

    python tools/bench_detect_recipe.py --eval-every 600      # both runs, 60 min each (~2.5 h)
    python tools/bench_detect_recipe.py --only recipe          # ours only
    python tools/bench_detect_recipe.py --only recipe --recipe my.yaml --out runs/mine   # a variant
    python tools/bench_detect_recipe.py --threads 1 --max-iters 2450 --out runs/bench_1t   # one core
    python tools/bench_detect_recipe.py --report               # table and curve from finished runs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from classify.base.config import load_config  # noqa: E402
from detect.tasks.recipe import RECIPE_CROPS, RECIPE_PRESET, detector_config, pretrain_backbone  # noqa: E402

TV_PRESET = ROOT / "configs/detect/train_tv_default.yaml"
LABELS = {"recipe": "ours: classifier-pretrained ResNet-18-FPN recipe",
          "tv": "torchvision default recipe (MobileNetV3-FPN, from scratch)"}


def log(message: str) -> None:
    print(f"[bench_detect_recipe] {message}", file=sys.stderr, flush=True)


def train_detector(preset: Path, data: Path, output: Path, budget_min: float, eval_every: int,
                   threads: int, backbone_weights: Path | None = None, max_iters: int | None = None,
                   epoch_evals: bool = False) -> None:
    """One detector run of ``preset`` on ``threads`` torch threads, stopped by ``budget_min``
    training minutes (``max_iters``: replaces the preset's schedule length).  Validation and test
    run every ``eval_every`` iterations and at the end, after every epoch too with ``epoch_evals``
    (about two wall minutes each here; not counted in the training minutes)."""
    from detect.engine.config import DetectTrainConfig
    from detect.engine.trainer import fit

    overrides = {"data": str(data), "output": str(output), "time_budget_min": budget_min, "threads": threads,
                 "device": "cpu", "eval_every_iters": eval_every, "exist_ok": True, "progress": False,
                 # without epoch_evals: a test period longer than any run (the test split is scored at
                 # the eval_every marks, which need test_period > 0) and validation at the marks only
                 "eval_period": 1 if epoch_evals else 0, "test_period": 1 if epoch_evals else 10**6}
    if max_iters is not None:
        overrides["max_iters"] = max_iters
    fit(detector_config(preset, backbone_weights, overrides) if backbone_weights is not None
        else load_config(DetectTrainConfig, preset, overrides))


def curve(history: dict, offset: float) -> list[tuple[float, float, float]]:
    """``(training minutes, test mAP50, test mAP50-95)`` points of a run's ``history.json`` (``offset``
    added)."""
    points = [(offset, 0.0, 0.0)]
    points += [(offset + r["minutes"], r["test_AP50"], r["test_AP"]) for r in history["epochs"]
               if r.get("test_AP50") is not None]
    final = history.get("test")
    if final and history["epochs"] and history["epochs"][-1]["minutes"] + offset > points[-1][0]:
        points.append((offset + history["epochs"][-1]["minutes"], final["AP50"], final["AP"]))  # best.pt
    return points


def at(points: list[tuple[float, float, float]], minute: float) -> tuple[float, float] | None:
    """The last point at or before ``minute`` (6 s of slack: a budget stops a run at the first
    iteration past it), None when the run ended over 2 minutes before it (a run that stopped at
    its ``max_iters`` just short of the budget keeps its final value)."""
    before = [p for p in points if p[0] <= minute + 0.1]
    return (before[-1][1], before[-1][2]) if before and points[-1][0] >= minute - 2.0 else None


def table(curves: dict[str, list[tuple[float, float, float]]], marks: list[float],
          finals: dict[str, dict]) -> str:
    names = list(curves)
    lines = ["| minutes | " + " | ".join(f"{n} mAP50 | {n} mAP50-95" for n in names) + " |",
             "| ---: |" + " ---: | ---: |" * len(names)]
    for minute in marks:
        cells = []
        for n in names:
            value = at(curves[n], minute)
            cells += ["-", "-"] if value is None else [f"{value[0]:.3f}", f"{value[1]:.3f}"]
        lines.append(f"| {minute:g} | " + " | ".join(cells) + " |")
    cells = []
    for n in names:
        f = finals.get(n)
        cells += ["-", "-"] if f is None else [f"**{f['AP50']:.3f}**", f"**{f['AP']:.3f}**"]
    lines.append("| final report (best.pt) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(curves: dict[str, list[tuple[float, float, float]]], pretrain_min: float | None, threads: int,
         path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, index, title in ((axes[0], 1, "test mAP50"), (axes[1], 2, "test mAP50-95")):
        for name, points in curves.items():
            ax.plot([p[0] for p in points], [p[index] for p in points], marker="o", ms=3, label=LABELS.get(name, name))
        if pretrain_min:
            ax.axvspan(0, pretrain_min, color="0.9", label="classifier pretraining (ours)")
        ax.set(xlabel=f"training minutes on {threads} thread{'s' if threads > 1 else ''}", ylabel=title,
               ylim=(0, 1), title=title)
        ax.grid(alpha=0.3)
    axes[0].axhline(0.9, color="0.5", ls="--", lw=0.8)
    axes[0].legend(fontsize=8, loc="lower right", bbox_to_anchor=(1, 0.12))
    fig.suptitle("Faster R-CNN on digit scenes: accuracy against CPU minutes")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def report(out: Path, budget: float) -> str:
    meta = json.loads((out / "bench.json").read_text()) if (out / "bench.json").is_file() else {}
    curves, finals = {}, {}
    for name, offset in (("recipe", meta.get("pretrain_minutes", 0.0)), ("tv", 0.0)):
        path = out / name / "history.json"
        if path.is_file():
            history = json.loads(path.read_text())
            curves[name] = curve(history, offset)
            if history.get("test"):
                finals[name] = history["test"]
    if not curves:
        raise SystemExit(f"no finished runs under {out}")
    marks = [m for m in (5, 10, 15, 20, 30, 40, 50, 60, 90, 120) if m <= budget]
    threads = meta.get("threads", 1)
    text = (f"Test split of the digit scenes, {threads} CPU thread(s), budget {budget:g} minutes a run "
            f"(ours: {meta.get('pretrain_minutes', 0.0):.1f} of them pretraining the classifier).\n\n"
            + table(curves, marks, finals))
    (out / "bench.md").write_text(text)
    plot(curves, meta.get("pretrain_minutes"), threads, out / "curve.png")
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=ROOT / "data/digit-scenes/coco")
    p.add_argument("--out", type=Path, default=ROOT / "runs/bench_detect_recipe")
    p.add_argument("--budget", type=float, default=60.0, help="training minutes a run (default: 60)")
    p.add_argument("--threads", type=int, default=2, help="torch threads of every step (default: 2)")
    p.add_argument("--max-iters", type=int, help="our detector's schedule length (default: the preset's; "
                   "size it to the iterations the budget allows at --threads)")
    p.add_argument("--eval-every", type=int, default=250, help="score the test split every N iterations")
    p.add_argument("--epoch-evals", action="store_true",
                   help="validate and test after every epoch too (default: every --eval-every iterations)")
    p.add_argument("--only", choices=["recipe", "tv"], help="run one of the two")
    p.add_argument("--recipe", type=Path, default=RECIPE_PRESET,
                   help="detector preset of our run (default: configs/detect/train_recipe.yaml)")
    for option, what in (("negatives", "background crops an image"), ("jitter", "jittered copies of each object"),
                         ("partial", "partial-object background crops an image")):
        p.add_argument(f"--{option}", type=int, default=RECIPE_CROPS[option],
                       help=f"{what} in the classifier's pretraining data (default: {RECIPE_CROPS[option]})")
    p.add_argument("--report", action="store_true", help="only redraw the table and curve")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    meta_path = args.out / "bench.json"
    if not args.report:
        if args.only in (None, "recipe"):
            pre = pretrain_backbone(args.data, args.out, overrides={"threads": args.threads, "device": "cpu"},
                                    crops={k: getattr(args, k) for k in RECIPE_CROPS}, log=log)
            meta_path.write_text(json.dumps({"pretrain_minutes": pre.minutes, "pretrain_val_top1": pre.val_top1,
                                             "budget": args.budget, "threads": args.threads}))
            train_detector(args.recipe, args.data, args.out / "recipe", args.budget - pre.minutes,
                           args.eval_every, args.threads, pre.weights, args.max_iters, args.epoch_evals)
        if args.only in (None, "tv"):
            train_detector(TV_PRESET, args.data, args.out / "tv", args.budget, args.eval_every, args.threads,
                           epoch_evals=args.epoch_evals)
    print(report(args.out, args.budget))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
