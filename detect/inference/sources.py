"""What ``detect predict SOURCE`` reads: images, one video, or a stream, from what the user typed.

:func:`resolve_source` turns SOURCE into a :class:`Source` of one of three kinds:

- ``"images"``: an ordered list of image files, and the files passed over with their reason
  (:class:`Skipped`), from an image file, a folder (recursive), a glob pattern or a ``.txt``
  list of paths;
- ``"video"``: one video file;
- ``"stream"``: a camera index or a stream URL, only with ``allow_stream=True`` (``--stream``).

Files are judged by their content, never their extension (:mod:`detect.inference.sniff`): a PNG
named ``.jpg`` is an image, a text file named ``.jpg`` is skipped. Sniffing reads a few hundred
bytes of each file and decodes nothing, so an image whose signature is intact but whose pixels
are truncated or corrupt is listed; its decode error comes when it is opened
(:func:`classify.base.images.open_image` names the file and Pillow's reason).
"""

from __future__ import annotations

import difflib
import glob
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from detect.inference.sniff import image_format, read_head, sniff_image, sniff_video, video_container
from detect.inference.video import describe_stream, stream_source

__all__ = ["Skipped", "Source", "resolve_source", "sniff_image", "sniff_video"]

_EXPECTED = "expected an image, a video, a folder of images, a glob pattern or a .txt list of image paths"
_GLOB_MAGIC = frozenset("*?[")
_SHOWN = 5  # skipped files named in a "no images" message


@dataclass(frozen=True)
class Skipped:
    """A file passed over, and why (``"zero bytes"``, ``"not an image (starts with b'...')"``,
    ``"a video; pass it as SOURCE"``, ``"line 3: no such file"``...)."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class Source:
    """What SOURCE names.

    Attributes:
        kind: ``"images"``, ``"video"`` or ``"stream"``.
        given: SOURCE as given (for messages).
        images: (``"images"``) the image files, in order: a folder's sorted by their path
            relative to it (folder by folder), a glob's sorted likewise, a list's in its order.
        skipped: (``"images"``) the files passed over, in the same order.
        video: (``"video"``) the video file.
        stream: (``"stream"``) the camera index (``int``) or the URL.
    """

    kind: Literal["images", "video", "stream"]
    given: str
    images: tuple[Path, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    video: Path | None = None
    stream: int | str | None = None

    def __str__(self) -> str:
        if self.kind == "video":
            return f"video {self.video}"
        if self.kind == "stream":
            return describe_stream(self.stream)
        skipped = f", {len(self.skipped)} skipped" if self.skipped else ""
        return f"{len(self.images)} image{'s' * (len(self.images) != 1)} from {self.given}{skipped}"


def _file_verdict(path: Path) -> str | None:
    """None if ``path`` is an image file, else why it is skipped."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "a broken symbolic link" if os.path.islink(path) else "no such file"
    except OSError as error:
        return f"cannot read it: {error.strerror}"
    if stat.S_ISDIR(info.st_mode):
        return "a folder"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"  # never opened: reading a FIFO would block
    if info.st_size == 0:
        return "zero bytes"
    try:
        head = read_head(path)
    except OSError as error:
        return f"cannot read it: {error.strerror}"
    if image_format(head) is not None:
        return None
    if video_container(head) is not None:
        return "a video; pass it as SOURCE"
    if head[4:8] == b"ftyp":
        return f"not an image this project reads (an ISO-BMFF file of brand {head[8:12].decode('latin-1')!r})"
    return f"not an image (starts with {head[:16]!r})"


def _sort_key(root: Path) -> Callable[[Path], tuple[str, ...]]:
    """Order by path relative to ``root``, component by component (a folder's files stay together)."""
    return lambda p: p.relative_to(root).parts if p.is_relative_to(root) else p.parts


def _images(files: list[Path]) -> tuple[list[Path], list[Skipped]]:
    images, skipped = [], []
    for path in files:
        reason = _file_verdict(path)
        if reason is None:
            images.append(path)
        else:
            skipped.append(Skipped(path, reason))
    return images, skipped


def _none_found(what: str, skipped: list[Skipped], root: Path | None = None) -> ValueError:
    """``no images in WHAT (N files, none an image: NAME: REASON | ... | and K more)``."""
    if not skipped:
        return ValueError(f"no images in {what} (it has no files); {_EXPECTED}")

    def name(path: Path) -> str:
        return str(path.relative_to(root)) if root is not None and path.is_relative_to(root) else str(path)

    shown = " | ".join(f"{name(s.path)}: {s.reason}" for s in skipped[:_SHOWN])
    more = f" | and {len(skipped) - _SHOWN} more" if len(skipped) > _SHOWN else ""
    count = f"{len(skipped)} file{'s' * (len(skipped) != 1)}"
    return ValueError(f"no images in {what} ({count}, none an image: {shown}{more})")


def _from_folder(given: str, folder: Path) -> Source:
    files = []
    for dirpath, dirnames, filenames in os.walk(folder):  # symbolic links to folders are not followed
        dirnames.sort()
        files += [Path(dirpath) / name for name in filenames]
    files.sort(key=_sort_key(folder))
    images, skipped = _images(files)
    if not images:
        raise _none_found(f"folder {folder}", skipped, folder)
    return Source("images", given, images=tuple(images), skipped=tuple(skipped))


def _from_glob(given: str) -> Source:
    prefix = given[:min(i for i, c in enumerate(given) if c in _GLOB_MAGIC)]
    base = Path(prefix.rpartition("/")[0] or "/") if "/" in prefix else Path(".")  # the folder searched
    matches = [Path(m) for m in glob.glob(given, recursive=True)]
    if not matches:
        if not base.is_dir():
            raise FileNotFoundError(f"SOURCE pattern {given!r}: the folder {base} does not exist")
        raise ValueError(f"no file matches the pattern {given!r} (looked in {base}); {_EXPECTED}")
    files = sorted((m for m in matches if not m.is_dir()), key=_sort_key(base))
    images, skipped = _images(files)
    if not images:
        folders = len(matches) - len(files)
        also = (f"; {folders} folder{'s' * (folders != 1)} matched too, not searched (use ** to recurse)"
                if folders else "")
        raise ValueError(str(_none_found(f"the files matching {given!r}", skipped, base)) + also)
    return Source("images", given, images=tuple(images), skipped=tuple(skipped))


def _from_list(given: str, listing: Path) -> Source:
    try:
        lines = listing.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as error:
        raise ValueError(f"list of images {listing}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    images, skipped = [], []
    for number, line in enumerate(lines, 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        path = Path(entry) if Path(entry).is_absolute() else listing.parent / entry
        reason = _file_verdict(path)
        if reason is None:
            images.append(path)
        else:
            skipped.append(Skipped(path, f"line {number}: {reason}"))
    if not images:
        if not skipped:
            raise ValueError(f"no images in the list {listing}: it names no file (blank lines and # comments only)")
        raise _none_found(f"the list {listing}", skipped, listing.parent)
    return Source("images", given, images=tuple(images), skipped=tuple(skipped))


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start >= len(head) - 3  # a character cut at the end of the head
    return True


def _from_file(given: str, path: Path) -> Source:
    if not stat.S_ISREG(path.stat().st_mode):
        raise ValueError(f"SOURCE {path} is not a regular file; {_EXPECTED}")
    head = read_head(path)
    if not head:
        raise ValueError(f"SOURCE {path} is empty (zero bytes); {_EXPECTED}")
    if path.suffix.lower() == ".txt" and _looks_like_text(head):
        return _from_list(given, path)
    if image_format(head) is not None:
        return Source("images", given, images=(path,))
    if sniff_video(path):
        return Source("video", given, video=path)
    hint = " (a list of paths must be named .txt)" if _looks_like_text(head) else ""
    raise ValueError(f"SOURCE {path} is neither an image nor a video OpenCV can read "
                     f"(it starts with {head[:16]!r}); {_EXPECTED}{hint}")


def _not_found(path: Path) -> FileNotFoundError:
    message = f"SOURCE not found: {path}"
    parent = path.parent
    if parent.is_dir():
        try:
            names = [entry.name for _, entry in zip(range(20_000), os.scandir(parent))]
        except OSError:
            names = []
        close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.6)
        if close:
            message += f" (did you mean {parent / close[0]}?)"
    else:
        missing = parent
        while not missing.parent.is_dir() and missing.parent != missing:
            missing = missing.parent
        message += f" (the folder {missing} does not exist)"
    return FileNotFoundError(message)


def resolve_source(source: str | Path | int, *, allow_stream: bool = False) -> Source:
    """What ``source`` names: images, a video or a stream (see :class:`Source`).

    Tried in this order:

    1. a camera index (an ``int``, or a string of digits that is not an existing path) or a URL
       (``rtsp://``, ``rtsps://``, ``rtmp://``, ``http://``, ``https://``): a ``"stream"``,
       only with ``allow_stream``;
    2. an existing folder: every regular file under it, recursively (symbolic links to folders
       are not followed), sorted by relative path, sniffed by content; images are kept, other
       files are :class:`Skipped` with their reason (``"zero bytes"``, ``"not an image (starts
       with b'...')"``, ``"a video; pass it as SOURCE"``...);
    3. an existing file: a ``.txt`` file of text is a list of paths (one a line, relative to
       the list's folder, blank lines and ``#`` comments skipped; an entry that is missing or not
       an image is :class:`Skipped` with ``"line N: ..."``); an image is a one-image
       ``"images"``; a video (by signature, else if OpenCV opens it and reads a frame) a
       ``"video"``;
    4. a glob pattern (``*``, ``?``, ``[...]``, ``**`` for any depth): the matching files (not
       folders), sorted, sniffed like a folder's.

    Raises:
        ValueError: a camera or URL without ``allow_stream`` (pass ``--stream``); nothing usable
            found (``no images in folder X (12 files, none an image: ...)``, a file that is
            neither an image nor a video, a pattern that matches nothing).
        FileNotFoundError: ``source`` does not exist, naming it and a close name in its folder
            (``did you mean ...?``) or the folder that is missing.
    """
    stream = stream_source(source, allow_stream=allow_stream)
    given = str(source)
    if stream is not None:
        return Source("stream", given, stream=stream)
    path = Path(source)
    if path.is_dir():
        return _from_folder(given, path)
    if path.exists():
        return _from_file(given, path)
    if _GLOB_MAGIC & set(given):
        return _from_glob(given)
    raise _not_found(path)
