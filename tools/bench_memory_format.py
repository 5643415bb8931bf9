"""Training-step time of zoo models in NCHW vs channels-last memory format, on this machine.

One step = forward, cross-entropy, backward and an SGD update on a random batch, as
``classify train`` runs it; the table gives the median over ``--steps`` timed steps (after two
warm-up steps) in milliseconds an image, and the speed-up of channels-last (``--channels-last
true`` in ``classify train``).

    python tools/bench_memory_format.py                               # 2 threads, 64 px, batch 128
    python tools/bench_memory_format.py --models resnet18 mobilenet_v2 --size 96 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from classify.models.registry import get_model  # noqa: E402

MODELS = ["resnet18", "mobilenet_v2", "mobilenet_v1", "shufflenet_v2_x1_0", "efficientnet_lite0"]


def step_seconds(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, steps: int) -> float:
    """Median seconds of one SGD training step on ``images`` [N, C, H, W] (after 2 warm-ups)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train()
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name: str, size: int, batch: int, steps: int) -> tuple[float, float]:
    """Milliseconds an image in NCHW and in channels-last for zoo model ``name`` (1 channel)."""
    torch.manual_seed(0)
    model = get_model(name, num_classes=10, in_chans=1)
    images = torch.randn(batch, 1, size, size)
    labels = torch.randint(0, 10, (batch,))
    nchw = step_seconds(model, images, labels, steps)
    model = model.to(memory_format=torch.channels_last)
    nhwc = step_seconds(model, images.contiguous(memory_format=torch.channels_last), labels, steps)
    return 1000 * nchw / batch, 1000 * nhwc / batch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=MODELS, help="zoo model names")
    p.add_argument("--size", type=int, default=64, help="input size in pixels (default 64)")
    p.add_argument("--batch", type=int, default=128, help="images a step (default 128)")
    p.add_argument("--steps", type=int, default=5, help="timed steps a format (default 5)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"Training step on CPU, {args.threads} thread(s), {args.size} px, batch {args.batch}, "
          f"torch {torch.__version__}\n")
    print("| model | NCHW ms/img | channels-last ms/img | speed-up |")
    print("| --- | ---: | ---: | ---: |")
    for name in args.models:
        nchw, nhwc = measure(name, args.size, args.batch, args.steps)
        print(f"| {name} | {nchw:.2f} | {nhwc:.2f} | {nchw / nhwc:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
