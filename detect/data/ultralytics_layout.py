"""A dataset in ultralytics' training layout, written from the project's splits of any format.

Layout under ``root``::

    data.yaml                     path (absolute), train, val[, test], names {id: name}, nc
    images/<role>/<file>          links to the source images (hard link, else symlink, else copy)
    labels/<role>/<stem>.txt      one ``class cx cy w h`` line an object, normalised by the image size

``role`` is ``train``, ``val`` or ``test``. ultralytics' trainer needs a ``val`` entry: without a
validation split it names the training images (:attr:`UltralyticsLayout.val_is_train`).
Label lines use :func:`detect.data.yolo_txt.label_line` (12 significant digits: a box comes
back within 1e-9 of the image size). Crowd regions (COCO ``iscrowd``) are left out, since
ultralytics has no ignore regions and would learn them as objects; VOC ``difficult`` objects
are kept. Nested file names are flattened (``a/b.jpg`` -> ``a__b.jpg``) so that no source
folder called ``images`` can change where ultralytics looks for a label file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from classify.base.atomic import write_text_atomic
from detect.data.yolo_txt import label_line
from detect.structures import DatasetSplit

ROLES = ("train", "val", "test")


@dataclass(frozen=True)
class UltralyticsLayout:
    """A written layout.

    Attributes:
        yaml_path: its ``data.yaml`` (what ultralytics' ``data=`` takes).
        class_names: the classes, in label order.
        images: images written per role.
        val_is_train: ``val`` names the training images (no validation split was given).
    """

    yaml_path: Path
    class_names: list[str]
    images: dict[str, int]
    val_is_train: bool


def write_ultralytics_layout(splits: Mapping[str, DatasetSplit], root: Path) -> UltralyticsLayout:
    """Write ``splits`` (``train`` required; ``val``, ``test`` optional) in ultralytics' layout
    under ``root``, replacing what an earlier call wrote there.

    Raises:
        ValueError: no ``train`` split, an unknown role, or splits whose class names differ.
    """
    if "train" not in splits:
        raise ValueError(f"write_ultralytics_layout: expected a 'train' split, got {sorted(splits)}")
    unknown = sorted(set(splits) - set(ROLES))
    if unknown:
        raise ValueError(f"write_ultralytics_layout: unknown split roles {unknown}; expected {list(ROLES)}")
    names = list(splits["train"].class_names)
    for role, split in splits.items():
        if list(split.class_names) != names:
            raise ValueError(f"write_ultralytics_layout: the {role} split's classes {split.class_names} differ "
                             f"from the train split's {names}")
    root = Path(root).resolve()
    for folder in ("images", "labels"):
        shutil.rmtree(root / folder, ignore_errors=True)  # stale files (and ultralytics' label caches)
    counts = {role: _write_split(split, root, role) for role, split in splits.items()}
    data = {"path": str(root), "train": "images/train", "val": "images/val" if "val" in splits else "images/train"}
    if "test" in splits:
        data["test"] = "images/test"
    data.update(names=dict(enumerate(names)), nc=len(names))
    yaml_path = write_text_atomic(root / "data.yaml", yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return UltralyticsLayout(yaml_path, names, counts, "val" not in splits)


def _write_split(split: DatasetSplit, root: Path, role: str) -> int:
    """Link the images of ``split`` into ``images/<role>`` and write ``labels/<role>``; returns the count."""
    image_dir, label_dir = root / "images" / role, root / "labels" / role
    image_dir.mkdir(parents=True)
    label_dir.mkdir(parents=True)
    stems: set[str] = set()
    for record in split.images:
        name = flat_name(record.file_name, record.image_id, stems)
        link_file(split.image_path(record), image_dir / name)
        lines = "".join(label_line(o, record.width, record.height) + "\n" for o in record.objects if not o.iscrowd)
        (label_dir / name).with_suffix(".txt").write_text(lines, encoding="utf-8")
    return len(split.images)


def flat_name(file_name: str, image_id: int, taken: set[str]) -> str:
    """``file_name`` without folders (``a/b.jpg`` -> ``a__b.jpg``), prefixed by ``image_id`` when its
    stem is already in ``taken`` (``x.jpg`` and ``x.png`` would share a label file); adds the stem."""
    name = file_name.replace("\\", "/").strip("/").replace("/", "__")
    if Path(name).stem in taken:
        name = f"{image_id}_{name}"
    taken.add(Path(name).stem)
    return name


def link_file(src: Path, dst: Path) -> None:
    """Make ``dst`` show the file ``src``: a hard link, else a symbolic link, else a copy.

    Raises:
        FileNotFoundError: no file at ``src``.
    """
    if not src.is_file():
        raise FileNotFoundError(f"image not found: {src}")
    try:
        os.link(src, dst)
        return
    except OSError:
        pass
    try:
        os.symlink(src.resolve(), dst)
    except OSError:
        shutil.copy2(src, dst)
