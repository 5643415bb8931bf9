"""Pascal VOC XML: ``Annotations/*.xml`` + ``JPEGImages/`` + ``ImageSets/Main/<split>.txt``.

VOC boxes are 1-based and inclusive: ``xmin = 1`` is the first pixel column and ``xmax`` the
last one covered. In our continuous xyxy convention that box spans ``[xmin - 1, xmax]``, so
load subtracts 1 from ``xmin``/``ymin`` and write adds it back; ``xmax``/``ymax`` are unchanged.
VOC has no class list, so the writer adds ``labels.txt`` (one name a line, in label order);
the reader uses it when present, else the names found, sorted.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from detect.data.files import format_number, place_image, write_text_atomic
from detect.data.problems import Problem
from detect.structures import DatasetSplit, ImageRecord, ObjectAnnotation

LABELS_FILE = "labels.txt"
LAYOUT = ("a Pascal VOC folder: Annotations/<name>.xml, JPEGImages/<name>.jpg, optionally "
          "ImageSets/Main/<split>.txt and labels.txt")


def read_voc(
    root: Path, split: str | None = None, class_names: list[str] | None = None
) -> tuple[DatasetSplit, list[Problem]]:
    """Read a VOC split (``split=None``: every XML under ``Annotations/``).

    ``root`` without ``Annotations/*.xml`` (another folder, a single ``.xml`` file) gives no
    images and one problem that names the expected layout and what was found.
    """
    root = Path(root)
    stems, problems = _split_stems(root, split)
    names = list(class_names) if class_names else read_labels_file(root)
    parsed = []
    for stem in stems:
        xml_path = root / "Annotations" / f"{stem}.xml"
        tree, problem = _parse_xml(xml_path)
        if problem:
            problems.append(problem)
        elif tree is not None:
            parsed.append((xml_path, tree))
    if names is None:
        names = sorted({obj.findtext("name", "").strip() for _, t in parsed for obj in t.iter("object")} - {""})
    images = []
    for index, (xml_path, tree) in enumerate(parsed):
        record, record_problems = _record_from_xml(tree, xml_path, names, default_id=index + 1)
        problems += record_problems
        if record is not None:
            images.append(record)
    split_out = DatasetSplit(class_names=names, images=images, image_root=root / "JPEGImages", name=split or "all")
    return split_out, problems


def class_name_occurrences(root: Path, split: str | None = None) -> dict[str, list[tuple[str, int]]]:
    """Every class name in the split's XML files (stripped, as :func:`read_voc` takes it), sorted,
    -> the ``(xml file, object index)`` of each object that carries it, in file order.
    Unreadable files and empty names are left out (:func:`read_voc` reports them)."""
    root = Path(root)
    stems, _ = _split_stems(root, split)
    found: dict[str, list[tuple[str, int]]] = {}
    for stem in stems:
        xml_path = root / "Annotations" / f"{stem}.xml"
        tree, _ = _parse_xml(xml_path)
        for index, node in enumerate(tree.getroot().iter("object") if tree is not None else ()):
            name = node.findtext("name", "").strip()
            if name:
                found.setdefault(name, []).append((str(xml_path), index))
    return dict(sorted(found.items()))


def read_labels_file(root: Path) -> list[str] | None:
    path = Path(root) / LABELS_FILE
    if not path.is_file():
        return None
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def layout_problem(root: Path) -> Problem | None:
    """Why ``root`` is not a VOC folder holding annotations (``None`` when it has ``Annotations/*.xml``)."""
    annotations = Path(root) / "Annotations"
    if annotations.is_dir() and any(annotations.glob("*.xml")):
        return None
    return Problem(str(root), f"expected {LAYOUT}; found {_describe(Path(root))}")


def _describe(root: Path, shown: int = 8) -> str:
    if not root.exists():
        return "nothing at this path"
    if not root.is_dir():
        return f"a file ({root.name}), not a folder: give the folder that holds Annotations/"
    if (root / "Annotations").is_dir():
        return "an Annotations/ folder without .xml files"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    if not names:
        return "an empty folder"
    more = f", ... ({len(names)} entries)" if len(names) > shown else ""
    return f"a folder without Annotations/, holding {', '.join(names[:shown])}{more}"


def _split_stems(root: Path, split: str | None) -> tuple[list[str], list[Problem]]:
    problem = layout_problem(root)
    if problem is not None:
        return [], [problem]
    if split is None:
        return sorted(p.stem for p in (root / "Annotations").glob("*.xml")), []
    list_file = root / "ImageSets" / "Main" / f"{split}.txt"
    if not list_file.is_file():
        return [], [Problem(str(list_file), f"split list for '{split}' not found")]
    return [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()], []


def _parse_xml(xml_path: Path) -> tuple[ET.ElementTree | None, Problem | None]:
    if not xml_path.is_file():
        return None, Problem(str(xml_path), "annotation file not found")
    if xml_path.stat().st_size == 0:
        return None, Problem(str(xml_path), "annotation file is empty")
    try:
        return ET.parse(xml_path), None
    except ET.ParseError as e:
        return None, Problem(str(xml_path), f"not valid XML: {e}", line=e.position[0])


def _int_text(node: ET.Element | None, tag: str) -> int | None:
    try:
        return int(float(node.findtext(tag, "")))  # type: ignore[union-attr]
    except (AttributeError, ValueError):
        return None


def _record_from_xml(
    tree: ET.ElementTree, xml_path: Path, names: list[str], default_id: int
) -> tuple[ImageRecord | None, list[Problem]]:
    file, root = str(xml_path), tree.getroot()
    size = root.find("size")
    width, height = _int_text(size, "width"), _int_text(size, "height")
    if not width or not height or width <= 0 or height <= 0:
        return None, [Problem(file, f"expected <size> with positive <width> and <height>, got {width}x{height}")]
    objects, problems = [], []
    for index, node in enumerate(root.iter("object")):
        obj, message = _object_from_xml(node, names)
        if obj is None:
            problems.append(Problem(file, message, index=index))
        else:
            objects.append(obj)
    file_name = root.findtext("filename", "").strip() or f"{xml_path.stem}.jpg"
    image_id = _int_text(root, "image_id") or default_id
    return ImageRecord(image_id, file_name, width, height, tuple(objects)), problems


def _object_from_xml(node: ET.Element, names: list[str]) -> tuple[ObjectAnnotation | None, str]:
    name = node.findtext("name", "").strip()
    if name not in names:
        return None, f"unknown class name {name!r}; known classes are {names}"
    box = node.find("bndbox")
    try:
        xmin, ymin, xmax, ymax = (float(box.findtext(k, "")) for k in ("xmin", "ymin", "xmax", "ymax"))  # type: ignore[union-attr]
    except (AttributeError, ValueError):
        return None, "expected <bndbox> with numeric <xmin>, <ymin>, <xmax>, <ymax>"
    return ObjectAnnotation(
        box=(xmin - 1.0, ymin - 1.0, xmax, ymax),
        label=names.index(name),
        difficult=node.findtext("difficult", "0").strip() == "1",
        truncated=node.findtext("truncated", "0").strip() == "1",
    ), ""


def voc_stem(file_name: str) -> str:
    """A flat, unique file stem for ``file_name`` (sub-folders become ``__``)."""
    return Path(file_name).with_suffix("").as_posix().replace("/", "__")


def voc_xml(record: ImageRecord, class_names: list[str], image_file: str) -> str:
    """The VOC XML text for one image (boxes in VOC's 1-based inclusive convention)."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = image_file
    ET.SubElement(root, "image_id").text = str(record.image_id)
    size = ET.SubElement(root, "size")
    for tag, value in (("width", record.width), ("height", record.height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    for obj in record.objects:
        node = ET.SubElement(root, "object")
        ET.SubElement(node, "name").text = class_names[obj.label]
        ET.SubElement(node, "truncated").text = str(int(obj.truncated))
        ET.SubElement(node, "difficult").text = str(int(obj.difficult))
        box = ET.SubElement(node, "bndbox")
        x1, y1, x2, y2 = obj.box
        for tag, value in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):
            ET.SubElement(box, tag).text = format_number(value)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def write_voc(split: DatasetSplit, root: Path) -> Path:
    """Write the split into a VOC tree at ``root``; returns the split's ImageSets list file."""
    root = Path(root)
    _write_labels_file(root, split.class_names)
    stems = []
    for record in split.images:
        stem = voc_stem(record.file_name)
        image_file = stem + Path(record.file_name).suffix
        place_image(split.image_path(record), root / "JPEGImages" / image_file)
        write_text_atomic(root / "Annotations" / f"{stem}.xml", voc_xml(record, split.class_names, image_file))
        stems.append(stem)
    list_file = root / "ImageSets" / "Main" / f"{split.name}.txt"
    write_text_atomic(list_file, "".join(f"{s}\n" for s in stems))
    return list_file


def _write_labels_file(root: Path, class_names: list[str]) -> None:
    existing = read_labels_file(root)
    if existing is not None and existing != list(class_names):
        raise ValueError(f"{root / LABELS_FILE} lists classes {existing}, but this split has {class_names}")
    write_text_atomic(root / LABELS_FILE, "".join(f"{n}\n" for n in class_names))
