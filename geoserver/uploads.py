"""Receiving `multipart/form-data` uploads: small text fields in memory, the file streamed to a server-made file.

The size limit is enforced as the bytes arrive (413 as soon as the file passes it, before the rest is read), so no
upload is ever held whole in memory or written past the limit. The file is written under a name the server chose
(`upload.<format>`) in a fresh folder of the data directory; the client's file name only tells the format. The
folder goes away when the request is done, whatever happened.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from fastapi import Request
from python_multipart.exceptions import ParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from layers.errors import InvalidParameter, TooLarge
from layers.ingest.readers import FORMATS

MAX_FIELDS = 40
MAX_FIELD_BYTES = 16 * 1024
FILE_FIELD = "file"


@dataclass
class Received:
    """An upload as received: its text fields, and where its file is (None when there was no file part)."""

    fields: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    size: int = 0


class _Receiver:
    """Callbacks of the streaming multipart parser: one part at a time, into a field or the upload file."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.received = Received()
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._value = bytearray()
        self._file: IO[bytes] | None = None
        self.complete = False

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value_data, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_part_data": self._data, "on_part_end": self._part_end,
            "on_end": self._end,
        }  # fmt: skip

    def _end(self) -> None:
        self.complete = True

    def _part_begin(self) -> None:
        self._headers, self._name, self._value = {}, None, bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if self._name == FILE_FIELD:
            if self.received.path is not None:
                raise InvalidParameter("send one file", parameter=FILE_FIELD)
            filename = options.get(b"filename", b"").decode("utf-8", "replace")
            self.received.path = self.folder / f"upload{_suffix(filename)}"
            self._file = open(self.received.path, "xb")  # noqa: SIM115 - closed at the part's end or on failure
        elif len(self.received.fields) >= MAX_FIELDS:
            raise InvalidParameter(f"at most {MAX_FIELDS} form fields", parameter=self._name[:40])

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None:
            self.received.size += end - start
            if self.received.size > self.max_bytes:
                raise TooLarge(f"the file is larger than {self.max_bytes // 1024**2} MB", parameter=FILE_FIELD)
            self._file.write(data[start:end])
            return
        self._value += data[start:end]
        if len(self._value) > MAX_FIELD_BYTES:
            raise InvalidParameter(f"{(self._name or '?')[:40]} is too long", parameter=(self._name or "?")[:40])

    def _part_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        elif self._name:
            if self._name in self.received.fields:
                raise InvalidParameter(f"{self._name[:40]} is given more than once", parameter=self._name[:40])
            self.received.fields[self._name] = self._value.decode("utf-8", "replace")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _suffix(filename: str) -> str:
    """The format the client's file name says (only its extension), one the server reads; 422 otherwise."""
    suffix = Path(filename.replace("\\\\", "/")).suffix.lower()
    if suffix not in FORMATS:
        raise InvalidParameter(
            f"the file must be one of {', '.join(sorted(FORMATS))} (as its name's extension says)", parameter=FILE_FIELD
        )
    return suffix


@contextlib.asynccontextmanager
async def received_upload(request: Request, root: Path, max_bytes: int) -> AsyncIterator[Received]:
    """Read a multipart/form-data request into a fresh folder under `root`, removed afterwards whatever happens."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise InvalidParameter("send the upload as multipart/form-data", parameter="Content-Type")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + 64 * 1024:
        raise TooLarge(f"the upload is larger than {max_bytes // 1024**2} MB", parameter=FILE_FIELD)
    folder = root / f"upload-{secrets.token_hex(8)}"
    folder.mkdir(parents=True, mode=0o700)
    receiver = _Receiver(folder, max_bytes)
    try:
        parser = MultipartParser(boundary, receiver.callbacks())  # type: ignore[arg-type]
        try:
            async for chunk in request.stream():
                parser.write(chunk)
            parser.finalize()
        except ParseError as exc:  # a body that is not multipart/form-data after all (headers too long, garbage)
            reason = str(exc).split("\n")[0][:80]
            raise InvalidParameter(
                f"the body is not well-formed multipart/form-data ({reason})", parameter="body"
            ) from None
        receiver.close()
        if not receiver.complete:
            raise InvalidParameter("the upload ended before its last part: send it again", parameter="body")
        yield receiver.received
    finally:
        receiver.close()
        shutil.rmtree(folder, ignore_errors=True)
