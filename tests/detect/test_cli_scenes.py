"""``detect data scenes`` end to end on the tiny preset: three valid formats, reuse, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from detect.data.formats import load_split
from detect.data.validate import validate_dataset

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "detect", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_scenes_build_all_formats_identically_and_reuse(tmp_path: Path) -> None:
    out = tmp_path / "scenes"
    first = run_cli("data", "scenes", "--preset", "tiny", "--out", out, "--num_train", 6, "--seed", 3)
    assert first.returncode == 0, first.stderr
    assert "| images | 6 | 4 | 4 | 14 |" in first.stdout
    for fmt in ("coco", "voc", "yolo"):
        assert validate_dataset(out / fmt, progress=False) == []
    for split in ("train", "val", "test"):
        coco, voc, yolo = (load_split(out / fmt, split) for fmt in ("coco", "voc", "yolo"))
        assert coco.class_names == voc.class_names == yolo.class_names == [str(d) for d in range(10)]
        for a, b, c in zip(coco.images, voc.images, yolo.images):
            # COCO also keeps the file's area (the box area here, within rounding); VOC has none
            assert [replace(o, annotated_area=None) for o in a.objects] == list(b.objects)
            assert all(abs(o.annotated_area - o.box_area) < 1e-6 for o in a.objects)
            assert [o.label for o in a.objects] == [o.label for o in c.objects]
            for oa, oc in zip(a.objects, c.objects):
                assert max(abs(x - y) for x, y in zip(oa.box, oc.box)) < 1e-6
    assert json.loads((out / "coco" / "scene_config.json").read_text())["seed"] == 3
    again = run_cli("data", "scenes", "--preset", "tiny", "--out", out, "--num_train", 6, "--seed", 3)
    assert again.returncode == 0 and "up to date" in again.stdout


def test_scenes_bad_flags_are_one_line_errors(tmp_path: Path) -> None:
    out = tmp_path / "x"
    result = run_cli("data", "scenes", "--preset", "tiny", "--out", out, "--max_iou", 3)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "command-line flag --max-iou: expected float >= 0.0 and <= 1.0, got 3.0" in result.stderr
    result = run_cli("data", "scenes", "--preset", "tiny", "--out", out, "--max_iuo", 3)
    assert result.returncode == 2 and "did you mean --max-iou?" in result.stderr
    result = run_cli("data", "scenes", "--preset", "tinny", "--out", out)
    assert result.returncode == 2 and "did you mean 'tiny'?" in result.stderr
    result = run_cli("data", "scenes", "--preset", "tiny", "--out", out, "--min_objects", 5, "--max_objects", 3)
    assert result.returncode == 2 and "min_objects=5 is greater than SceneConfig.max_objects=3" in result.stderr
    assert not (out / "yolo").exists()
