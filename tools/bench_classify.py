"""Classifier-training benchmark: accuracy and epoch time of the zoo on the packaged real data.

Each row is ``classify train`` with a preset from ``configs/classify`` (plus a few flags) run
through :func:`classify.engine.trainer.fit`; the table gives the test top-1 of the final model, the
mean wall-clock seconds of one training epoch (data, augmentation, forward, backward, step;
validation excluded) and the command that reproduces the row.

    python tools/bench_classify.py                  # the quick rows (about 25 min on 1 thread)
    python tools/bench_classify.py --rows full      # + ResNet-18 (30 epochs), MobileNet v2 (~5.5 h more)
    python tools/bench_classify.py --rows resnet18_fashion --threads 2   # 2 h 37 min on 2 cores
    python tools/bench_classify.py --rows resnet18_fashion --epochs 1 --subset 500   # a trial
    python tools/bench_classify.py --threads 2 --out runs/bench_classify
    python tools/bench_classify.py --rows full --resume   # continue rows stopped part-way
    python tools/bench_classify.py --rows lenet5_relu_fashion --peer   # + the torchvision loop

``--peer`` adds, under each Fashion-MNIST LeNet row, the nearest peer: the same model and
hyper-parameters trained by a textbook loop over torchvision's ``FashionMNIST`` dataset and
per-image ``transforms.v2`` (what a torchvision user would write), for accuracy and epoch time
side by side.

Rows are run one after another in this process with ``torch.set_num_threads(--threads)``
(default 1, the machines' shared cores); the table goes to stdout and, with the per-epoch
history, to ``<out>/bench.md`` and ``<out>/bench.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from classify.base.config import load_config  # noqa: E402
from classify.engine.config import TrainConfig  # noqa: E402
from classify.engine.trainer import fit  # noqa: E402

PRESETS = Path("configs/classify")


@dataclass(frozen=True)
class Row:
    name: str
    model: str
    dataset: str
    preset: str
    flags: dict[str, str] = field(default_factory=dict)


ROWS = {
    "lenet5_mnist5k": Row("lenet5_mnist5k", "LeNet-5", "MNIST-5k (4k/1k)", "classify_lenet5_mnist5k.yaml"),
    "lenet5_fashion": Row("lenet5_fashion", "LeNet-5", "Fashion-MNIST", "classify_lenet5_fashion.yaml"),
    "lenet5_relu_fashion": Row("lenet5_relu_fashion", "LeNet-5 (ReLU, max-pool)", "Fashion-MNIST",
                               "classify_lenet5_fashion.yaml",
                               {"model": "lenet5_relu", "crop_padding": "0.0625", "epochs": "10"}),
    "resnet18_fashion": Row("resnet18_fashion", "ResNet-18 @64 px", "Fashion-MNIST",
                            "classify_resnet18_fashion.yaml"),
    "mobilenet_v2_fashion": Row("mobilenet_v2_fashion", "MobileNet v2 @64 px", "Fashion-MNIST",
                                "classify_mobilenet_v2_fashion.yaml"),
    "lite0_finetune": Row("lite0_finetune", "EfficientNet-Lite0 ImageNet, fine-tuned",
                          "Fashion-MNIST 20/class", "classify_lite0_transfer.yaml"),
    "lite0_frozen": Row("lite0_frozen", "EfficientNet-Lite0 ImageNet, frozen (linear probe)",
                        "Fashion-MNIST 20/class", "classify_lite0_transfer.yaml",
                        {"freeze_backbone": "true", "lr": "0.01"}),
    "lite0_scratch": Row("lite0_scratch", "EfficientNet-Lite0 from scratch",
                         "Fashion-MNIST 20/class", "classify_lite0_transfer.yaml",
                         {"weights": "none", "backbone_lr_scale": "1"}),
}
PEER_ROWS = ("lenet5_fashion", "lenet5_relu_fashion")
GROUPS = {
    "quick": ["lenet5_mnist5k", "lenet5_fashion", "lenet5_relu_fashion", "lite0_finetune",
              "lite0_frozen", "lite0_scratch"],
    "full": list(ROWS),
}


def _command(row: Row, extra: dict[str, str]) -> str:
    flags = {**row.flags, **extra}
    text = " ".join(f"--{k} {v}" for k, v in flags.items())
    return f"classify train --config {PRESETS / row.preset}" + (f" {text}" if text else "")


def _peer_command(row: Row, extra: dict[str, str]) -> str:
    flags = "".join(f" --{k.replace('_', '-')} {v}" for k, v in extra.items())
    return f"python tools/bench_classify.py --rows {row.name} --peer{flags}"


def run_row(row: Row, extra: dict[str, str], threads: int, out: Path, resume: bool = False) -> dict:
    """Train one row; returns its table entry. With ``resume``, a row whose ``<out>/<row>/last.pt``
    exists (an interrupted run) continues from it, bit-for-bit as if it had not stopped."""
    flags = {**row.flags, **extra}
    config = load_config(TrainConfig, ROOT / PRESETS / row.preset,
                         {**flags, "threads": str(threads), "progress": "false",
                          "output": str(out), "name": row.name, "device": "cpu"})
    last = out / row.name / "last.pt"
    result = fit(config, resume=last if resume and last.is_file() else None,
                 log=lambda line: print(f"  [{row.name}] {line}", file=sys.stderr, flush=True))
    return {"row": row.name, "model": row.model, "dataset": row.dataset,
            "epochs": result.config.epochs, "test_top1": result.test.top1,
            "test_images": result.test.images, "epoch_seconds": result.epoch_seconds,
            "total_seconds": sum(h["seconds"] for h in result.history), "command": _command(row, extra),
            "history": result.history}


def _torchvision_fashion(root: Path, transforms: tuple) -> tuple:
    """torchvision's FashionMNIST datasets over the Debian files (gunzipped into ``root``)."""
    import gzip
    import shutil

    from torchvision import datasets

    from classify.data.datasets import FASHION_DIR, FASHION_FILES

    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in FASHION_FILES["train"] + FASHION_FILES["test"]:
        with gzip.open(FASHION_DIR / name) as src, open(raw / name[:-3], "wb") as dst:
            shutil.copyfileobj(src, dst)
    return (datasets.FashionMNIST(str(root), train=True, transform=transforms[0]),
            datasets.FashionMNIST(str(root), train=False, transform=transforms[1]))


def _peer_transforms(config: TrainConfig) -> tuple:
    import torch
    from torchvision.transforms import v2

    from classify.data.augment import normalization_for
    from classify.models.registry import get_model_entry

    entry = get_model_entry(config.model)
    size = config.image_size or entry.input_size
    fit = v2.Pad((size - 28) // 2) if config.fit_mode == "pad" else v2.Resize(size)
    mean, std = normalization_for(entry.mean, entry.std, 1)
    base = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), fit]
    augment = [v2.RandomCrop(size, padding=round(config.crop_padding * size)),
               v2.RandomHorizontalFlip(config.hflip if config.hflip is not None else 0.5)]
    return (v2.Compose(base + augment + [v2.Normalize(mean, std)]),
            v2.Compose(base + [v2.Normalize(mean, std)]))


def run_peer(row: Row, extra: dict[str, str], threads: int) -> dict:
    """The nearest peer of a Fashion-MNIST row: the same model and hyper-parameters trained by
    a textbook loop over torchvision's ``FashionMNIST`` and per-image ``transforms.v2``, with
    torch's own warm-up + cosine schedulers and weight decay on every parameter."""
    import tempfile

    import torch
    import torch.nn.functional as F
    from torch.optim import lr_scheduler as sched
    from torch.utils.data import Subset

    from classify.data.datasets import per_class_subset
    from classify.models.registry import get_model

    config = load_config(TrainConfig, ROOT / PRESETS / row.preset, {**row.flags, **extra})
    if config.data != "fashion" or config.schedule != "cosine" or config.optimizer not in ("adam", "sgd"):
        raise ValueError(f"{row.name}: the torchvision peer covers fashion rows with a cosine "
                         f"schedule and adam/sgd only")
    torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    with tempfile.TemporaryDirectory() as tmp:
        train, test = _torchvision_fashion(Path(tmp), _peer_transforms(config))
    if config.subset:
        train = Subset(train, per_class_subset(train.targets.numpy(), config.subset, config.seed))
    if config.test_subset:
        test = Subset(test, per_class_subset(test.targets.numpy(), config.test_subset, config.seed))
    loader = torch.utils.data.DataLoader(train, config.batch_size, shuffle=True)
    model = get_model(config.model, num_classes=10, in_chans=1)
    opt = (torch.optim.Adam(model.parameters(), config.lr, weight_decay=config.weight_decay)
           if config.optimizer == "adam" else
           torch.optim.SGD(model.parameters(), config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay))
    total, warm = config.epochs * len(loader), round(config.warmup_epochs * len(loader))
    schedule = sched.SequentialLR(opt, [sched.LinearLR(opt, config.warmup_factor, 1.0, max(warm, 1)),
                                        sched.CosineAnnealingLR(opt, total - warm)], [warm])
    seconds = []
    for _ in range(config.epochs):
        model.train()
        start = time.perf_counter()
        for x, y in loader:
            loss = F.cross_entropy(model(x), y, label_smoothing=config.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
        seconds.append(time.perf_counter() - start)
        print(f"  [peer {row.name}] epoch {len(seconds)}: {seconds[-1]:.1f} s", file=sys.stderr, flush=True)
    model.eval()
    with torch.inference_mode():
        correct = sum(int((model(x).argmax(1) == y).sum())
                      for x, y in torch.utils.data.DataLoader(test, 256))
    return {"row": f"peer_{row.name}", "model": f"{row.model} (torchvision loop, peer)",
            "dataset": row.dataset, "epochs": config.epochs, "test_top1": correct / len(test),
            "test_images": len(test), "epoch_seconds": sum(seconds) / len(seconds),
            "total_seconds": sum(seconds), "command": _peer_command(row, extra),
            "history": []}


def markdown(entries: list[dict], threads: int) -> str:
    lines = [f"Classifier training on CPU, {threads} thread(s); test top-1 of the final model; "
             "epoch time = one training epoch (validation excluded).", "",
             "| model | dataset | epochs | test top-1 | epoch time | command |",
             "| --- | --- | ---: | ---: | ---: | --- |"]
    for e in entries:
        lines.append(f"| {e['model']} | {e['dataset']} | {e['epochs']} | "
                     f"{100 * e['test_top1']:.2f}% ({e['test_images']}) | {e['epoch_seconds']:.1f} s | "
                     f"`{e['command']}` |")
    return "\n".join(lines) + "\n"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", nargs="+", default=["quick"],
                   help=f"row names or groups: {', '.join(GROUPS)}, {', '.join(ROWS)}")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    p.add_argument("--epochs", help="override every row's epochs (trials)")
    p.add_argument("--subset", help="override: training images a class (trials)")
    p.add_argument("--test-subset", help="override: test images a class (trials)")
    p.add_argument("--peer", action="store_true", help="add the torchvision-loop peer of each "
                   "Fashion-MNIST LeNet row (same model and hyper-parameters)")
    p.add_argument("--out", type=Path, default=Path("runs/bench_classify"), help="run folders")
    p.add_argument("--resume", action="store_true", help="continue rows interrupted earlier "
                   "from <out>/<row>/last.pt (same flags) instead of starting them again")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    names = [n for item in args.rows for n in GROUPS.get(item, [item])]
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        print(f"error: unknown row(s) {unknown}; known: {', '.join([*GROUPS, *ROWS])}", file=sys.stderr)
        return 2
    extra = {k: v for k, v in (("epochs", args.epochs), ("subset", args.subset),
                               ("test_subset", args.test_subset)) if v is not None}
    entries = []
    for name in names:
        entries.append(run_row(ROWS[name], extra, args.threads, args.out, args.resume))
        e = entries[-1]
        print(f"{name}: test top-1 {100 * e['test_top1']:.2f}%, {e['epoch_seconds']:.1f} s/epoch, "
              f"{e['total_seconds']:.0f} s in all", file=sys.stderr, flush=True)
        if args.peer and name in PEER_ROWS:
            entries.append(run_peer(ROWS[name], extra, args.threads))
    table = markdown(entries, args.threads)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.md").write_text(table)
    (args.out / "bench.json").write_text(json.dumps(entries, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
