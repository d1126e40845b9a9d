"""The web map's files: the page's static files, its message catalogues and the npm packages copied at set-up time.

Files are served from three folders of `geoserver/web/` only, by name (no `..`, no hidden files, known suffixes),
with a strong ETag, a short public cache lifetime, and the gzip copy `scripts/build-web` made when the client
accepts gzip. Read files stay in memory, keyed by their modification time.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request, Response

from geoserver.negotiation import accepts_gzip, none_match
from layers.errors import NotFound

WEB_DIR = Path(__file__).resolve().parent / "web"
FOLDERS = {"static": WEB_DIR / "static", "messages": WEB_DIR / "messages", "vendor": WEB_DIR / "vendor"}
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
}
ASSET_MAX_AGE_S = 300
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Asset:
    """One file as it is served: its bytes, their gzip copy if any, type and ETag."""

    body: bytes
    gzipped: bytes | None
    media_type: str
    etag: str


def _find(folder: str, name: str) -> Path | None:
    """The file `name` of `folder`, if it is a plain file there with a known suffix."""
    base = FOLDERS[folder]
    parts = name.split("/")
    if not all(_NAME.fullmatch(part) for part in parts) or Path(name).suffix not in MEDIA_TYPES:
        return None
    path = base.joinpath(*parts)
    if not path.is_file() or not path.resolve().is_relative_to(base.resolve()):
        return None
    return path


@functools.lru_cache(maxsize=128)  # keyed by modification time too: an edited file is read again
def _load(path: Path, modified_ns: int) -> Asset:
    """A file's bytes, gzip copy, type and ETag."""
    body = path.read_bytes()
    packed = path.with_name(path.name + ".gz")
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    return Asset(body, packed.read_bytes() if packed.is_file() else None, MEDIA_TYPES[path.suffix], etag)


def asset_response(request: Request, folder: str, name: str) -> Response:
    """The file `name` of `folder`, or a 404."""
    path = _find(folder, name) if folder in FOLDERS else None
    if path is None:
        raise NotFound(f"no file {name[:80]!r} in the web map's {folder[:20]!r}")
    asset = _load(path, path.stat().st_mtime_ns)
    gzip = asset.gzipped is not None and accepts_gzip(request.headers.get("accept-encoding"))
    etag = asset.etag[:-1] + '-gz"' if gzip else asset.etag
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={ASSET_MAX_AGE_S}", "Vary": "Accept-Encoding"}
    if none_match(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    if gzip:
        headers["Content-Encoding"] = "gzip"
    return Response(asset.gzipped if gzip else asset.body, media_type=asset.media_type, headers=headers)


@functools.cache
def messages(lang: str) -> dict[str, str]:
    """The web map's message catalogue for `lang` (ICU MessageFormat, one JSON object per language)."""
    data = json.loads((FOLDERS["messages"] / f"{lang}.json").read_text(encoding="utf-8"))
    return {str(key): str(value) for key, value in data.items()}


def vendor_ready() -> bool:
    """True when `scripts/build-web` has copied the npm packages the browser needs."""
    return (FOLDERS["vendor"] / "maplibre-gl-csp.js").is_file()
