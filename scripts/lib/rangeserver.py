"""A plain static file server, as object storage or a CDN serves files: whole, or one byte range (206).

Python's own http.server answers every request whole; PMTiles readers ask for byte ranges, so single ranges are added
here. Every request is recorded (path, Range header, status). Used by `scripts/serve-static` and by the tests.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_RANGE = re.compile(r"bytes=(?:(\d+)-(\d*)|-(\d+))$")  # FIRST-[LAST], or -SUFFIX (the last SUFFIX bytes)


@dataclass
class Seen:
    """The requests a static server answered: (path, Range header or None, status)."""

    requests: list[tuple[str, str | None, int]] = field(default_factory=list)


class _RangeHandler(SimpleHTTPRequestHandler):
    seen: Seen

    def __init__(self, *args: Any, seen: Seen, **kwargs: Any) -> None:
        self.seen = seen
        super().__init__(*args, **kwargs)

    def send_response(self, code: int, message: str | None = None) -> None:
        self.seen.requests.append((self.path, self.headers.get("Range"), code))
        super().send_response(code, message)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:
        wanted = _RANGE.match(self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if wanted is None or not path.is_file():
            super().do_GET()
            return
        size = path.stat().st_size
        first, last, suffix = wanted.groups()
        if suffix is not None:  # a suffix longer than the file asks for all of it (RFC 9110, 14.1.2)
            start, end = max(0, size - int(suffix)), size - 1
        else:
            start, end = int(first), min(int(last) if last else size - 1, size - 1)
        if not 0 <= start <= end:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with path.open("rb") as f:
            f.seek(start)
            body = f.read(end - start + 1)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.wfile.write(body)


class StaticServer:
    """Serve a folder (port 0: any free one), in a thread for as long as the `with` block lasts, or `forever()`."""

    def __init__(self, folder: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.seen = Seen()
        handler = partial(_RangeHandler, directory=str(folder), seen=self.seen)
        self.server = ThreadingHTTPServer((host, port), handler)
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}"

    def forever(self) -> None:
        """Serve until interrupted."""
        with self.server:
            self.server.serve_forever()

    def __enter__(self) -> StaticServer:
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
