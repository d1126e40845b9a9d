"""Files a community group would upload (those of `layers.demo.samples`), and hostile ones, built by the tests
themselves."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from layers.demo.samples import garden_plots, kml_events, zipped_shapefile

__all__ = ["garden_plots", "kml_events", "zip_bomb", "zip_of", "zipped_shapefile"]


def zip_of(path: Path, entries: dict[str, bytes], *, symlink: str | None = None) -> Path:
    """A zip with these entries (name: bytes), and optionally an entry that is a symbolic link."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        if symlink is not None:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = 0o120777 << 16
            archive.writestr(info, "/etc/passwd")
    return path


def zip_bomb(path: Path, unpacked_mb: int = 64) -> Path:
    """A small zip whose .shp unpacks to many megabytes of zeros."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb.shp", b"\0" * unpacked_mb * 1024 * 1024)
        archive.writestr("bomb.shx", b"\0" * 100)
        archive.writestr("bomb.dbf", b"\0" * 100)
    path.write_bytes(buffer.getvalue())
    return path
