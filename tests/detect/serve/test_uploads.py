"""Image uploads checked before decoding: kind from the content, pixel count from the header, decode errors."""

from __future__ import annotations

import numpy as np
import pytest
from bad_uploads import bad_images, encoded

from detect.serve.errors import ApiError
from detect.serve.uploads import decode_upload, describe_content

LIMIT = 40_000_000


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM"])
def test_every_accepted_format_decodes_to_rgb(fmt: str) -> None:
    image = decode_upload(encoded(fmt, (64, 48)), LIMIT)
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8


@pytest.mark.parametrize("bad", bad_images(), ids=lambda b: b.name)
def test_bad_images_are_refused_with_what_came(bad) -> None:
    with pytest.raises(ApiError) as error:
        decode_upload(bad.body, LIMIT)
    body = error.value.body
    assert body.status == bad.status
    assert bad.says in f"{body.message} {body.got}"
    assert body.expected


def test_the_pixel_limit_is_checked_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import ImageFile

    def refuse(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    with pytest.raises(ApiError) as error:
        decode_upload(encoded("PNG", (64, 48)), 64 * 48 - 1)
    assert error.value.status == 413 and "64x48 = 3072 pixels" in error.value.body.message


def test_descriptions_name_the_content() -> None:
    assert describe_content(encoded("PNG")) == "a PNG image"
    assert describe_content(b"") == "an empty body (0 bytes)"
    assert describe_content(b"plain words") == "text starting 'plain words'"
