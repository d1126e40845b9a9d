"""Secret keys the server keeps: from settings when given, else created once in the data directory."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from pathlib import Path

from geoserver.settings import Settings

log = logging.getLogger("geoserver.keys")
CURSOR_KEY_FILE = Path("keys") / "nearby-cursor.key"


def cursor_secret(settings: Settings) -> bytes:
    """The key that signs near-me cursors: GEOSERVER_CURSOR_SECRET, else the data directory's key file."""
    if settings.cursor_secret is not None:
        return hashlib.sha256(settings.cursor_secret.get_secret_value().encode()).digest()
    return key_file(settings.data_dir / CURSOR_KEY_FILE)


def key_file(path: Path) -> bytes:
    """A key shared by every worker on this data directory (created once, mode 0600).

    A next link may reach another worker process than the one that signed it. Where the data directory cannot be
    written, the key is per process: cursors then only work on the worker that made them.
    """
    try:
        return path.read_bytes()[:64] or _new_key(path)
    except FileNotFoundError:
        return _new_key(path)
    except OSError:
        log.warning("cannot read %s; next links only work on the worker that made them", path.name)
        return secrets.token_bytes(32)


def _new_key(path: Path) -> bytes:
    key = secrets.token_bytes(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key)
        try:
            os.link(partial, path)  # atomic, and refuses to replace: of two racing workers, one key wins
        except FileExistsError:
            pass
        finally:
            partial.unlink()
        return path.read_bytes()[:64]
    except OSError:
        log.warning("cannot write %s; next links only work on the worker that made them", path.name)
        return key
