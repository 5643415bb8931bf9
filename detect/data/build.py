"""Build the digit-scenes benchmark on disk in all three formats, with its statistics.

Layout under ``out``::

    coco/   images/<split>/*.jpg  annotations/instances_<split>.json  scene_config.json
    voc/    JPEGImages/  Annotations/  ImageSets/Main/<split>.txt  labels.txt
    yolo/   images/<split>/  labels/<split>/  data.yaml
    stats.json  STATS.md

The VOC and YOLO trees hard-link the COCO images, so the images are stored once. A build whose
``scene_config.json`` equals the requested config is reused, not redone.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

from detect.data.files import write_json_atomic, write_text_atomic
from detect.data.formats import write_split
from detect.data.scene_config import SceneConfig
from detect.data.scenes import build_scenes, format_statistics, scene_statistics

FORMAT_DIRS = ("coco", "voc", "yolo")


def is_built(out: Path, config: SceneConfig) -> bool:
    """True when ``out`` holds a complete build of exactly ``config``."""
    stamp = out / "coco" / "scene_config.json"
    if not (stamp.is_file() and (out / "stats.json").is_file() and (out / "yolo" / "data.yaml").is_file()):
        return False
    return json.loads(stamp.read_text()) == json.loads(json.dumps(asdict(config)))


def build_digit_scenes(out: Path, config: SceneConfig, force: bool = False, workers: int | None = None,
                       progress: bool = True) -> dict[str, dict]:
    """Build (or reuse) the dataset at ``out``; print and return its statistics."""
    out = Path(out)
    if force or not is_built(out, config):
        for name in FORMAT_DIRS:  # a partial or different earlier build must not leave stale files
            shutil.rmtree(out / name, ignore_errors=True)
        workers = workers or min(2, os.cpu_count() or 1)
        splits = build_scenes(config, out / "coco", progress=progress, workers=workers)
        for split in splits.values():
            for fmt in FORMAT_DIRS:
                write_split(split, out / fmt, fmt)
        stats = scene_statistics(splits)
        write_json_atomic(out / "stats.json", stats)
        write_text_atomic(out / "STATS.md", format_statistics(stats) + "\n")
        print(f"built the digit-scenes dataset in {out} (COCO, VOC and YOLO formats)")
    else:
        stats = json.loads((out / "stats.json").read_text())
        print(f"the digit-scenes dataset in {out} is up to date (use --force to rebuild)")
    print(format_statistics(stats))
    return stats
