"""The ``POST /v1/jobs`` form, received as it streams: text fields kept, the video written to disk.

A form with a video is ``multipart/form-data``; one without (an evaluation) may also be
``application/x-www-form-urlencoded``.

The multipart body is parsed chunk by chunk (python-multipart's streaming parser), so a video
never sits in memory: the part named ``file`` goes straight to its file on disk, its bytes
counted as they arrive. Past ``max_file_bytes`` the upload stops at once with a 413 and the
partial file is removed, as it is on any other failure (a malformed body, a client that goes
away, the service's own body limit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import parse_qsl

from fastapi import Request
from python_multipart.exceptions import ParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from detect.serve.errors import ApiError

#: the form field that holds the video
FILE_FIELD = "file"
#: the text fields of a form together, at most
MAX_FIELD_BYTES = 64 * 1024
EXPECTED_FORM = ("multipart/form-data with the field 'kind' and the video in 'file' (detect/track), or "
                 "application/x-www-form-urlencoded (evaluate)")


@dataclass
class ReceivedForm:
    """A received form: its text ``fields``, and the video written to ``file`` (``size`` bytes;
    ``file`` is None when the form had no file part)."""

    fields: dict[str, str] = field(default_factory=dict)
    file: Path | None = None
    filename: str | None = None
    size: int = 0


class _Receiver:
    """python-multipart callbacks that fill a :class:`ReceivedForm`, writing the file part to ``destination``."""

    def __init__(self, destination: Path, max_file_bytes: int) -> None:
        self.form, self.destination, self.max_file_bytes = ReceivedForm(), destination, max_file_bytes
        self._header = [bytearray(), bytearray()]
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._value = bytearray()
        self._field_bytes = 0
        self._file: IO[bytes] | None = None

    def callbacks(self) -> dict:
        return {"on_part_begin": self._headers.clear, "on_header_field": self._header_field,
                "on_header_value": self._header_value, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished, "on_part_data": self._data, "on_part_end": self._part_end}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header[0] += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._header[1] += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._header[0]).lower()] = bytes(self._header[1])
        self._header = [bytearray(), bytearray()]

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        self._value = bytearray()
        if b"filename" not in options:
            return
        if self._name != FILE_FIELD or self.form.file is not None:
            what = f"a second file in '{self._name}'" if self.form.file is not None else f"a file in '{self._name}'"
            raise ApiError(422, "the form holds a file where none is expected", expected=f"one file, in the field "
                           f"'{FILE_FIELD}'", got=what)
        self.form.file, self.form.filename = self.destination, options[b"filename"].decode("utf-8", "replace")
        self._file = open(self.destination, "wb")  # noqa: SIM115 - written across callbacks, closed by close()

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None:
            self.form.size += end - start
            if self.form.size > self.max_file_bytes:
                raise ApiError(413, f"the video is larger than this service accepts ({self.max_file_bytes} bytes); "
                               "the upload was stopped there", expected=f"at most {self.max_file_bytes} bytes",
                               got=f"more than {self.max_file_bytes} bytes")
            self._file.write(data[start:end])
            return
        self._field_bytes += end - start
        if self._field_bytes > MAX_FIELD_BYTES:
            raise ApiError(413, "the form's text fields are too long", expected=f"at most {MAX_FIELD_BYTES} bytes "
                           "of text fields", got=f"more than {MAX_FIELD_BYTES} bytes")
        self._value += data[start:end]

    def _part_end(self) -> None:
        if self._file is not None:
            self.close()
        elif self._name:
            self.form.fields[self._name] = self._value.decode("utf-8", "replace")

    @property
    def open(self) -> bool:
        """Whether the file part began and did not end."""
        return self._file is not None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


async def _url_encoded(request: Request) -> ReceivedForm:
    """A form without a file (``application/x-www-form-urlencoded``: an evaluate job)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FIELD_BYTES:
            raise ApiError(413, "the form is too long", expected=f"at most {MAX_FIELD_BYTES} bytes of fields",
                           got=f"more than {MAX_FIELD_BYTES} bytes")
    return ReceivedForm(fields=dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)))


async def receive_form(request: Request, destination: Path, max_file_bytes: int) -> ReceivedForm:
    """The form of ``request`` (multipart, or URL-encoded when it has no file), its file part
    (the field ``file``) written to ``destination``.

    Raises:
        ApiError: 415 not a form; 400 a malformed body; 413 a file over ``max_file_bytes`` or
            text fields over :data:`MAX_FIELD_BYTES`; 422 a file in another field, or two. On
            any error (these, a client gone, the body limit) ``destination`` is removed.
    """
    content_type = request.headers.get("content-type", "")
    kind, options = parse_options_header(content_type)
    if kind == b"application/x-www-form-urlencoded":
        return await _url_encoded(request)
    if kind != b"multipart/form-data" or not options.get(b"boundary"):
        raise ApiError(415, "a job is submitted as a form", expected=EXPECTED_FORM,
                       got=f"Content-Type {content_type!r}" if content_type else "no Content-Type")
    receiver = _Receiver(destination, max_file_bytes)
    parser = MultipartParser(options[b"boundary"], receiver.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
        if receiver.open:
            raise ApiError(400, "the body ended inside the file", expected=EXPECTED_FORM, got="a cut multipart body")
    except BaseException as exc:
        receiver.close()
        destination.unlink(missing_ok=True)
        if isinstance(exc, ParseError):
            raise ApiError(400, f"the multipart body cannot be parsed ({exc})", expected=EXPECTED_FORM,
                           got="a malformed body") from None
        raise
    return receiver.form
