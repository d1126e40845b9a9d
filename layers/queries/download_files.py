"""Whole-layer downloads that cost once: each file is built once per layer version and then served from disk.

Files live in `<root>/<layer>/v<version>.<suffix>`. Concurrent requests for a file being built wait for the one
build; a build keeps going when the client that started it leaves, and its file is kept. Builds run in a process of
their own at low CPU priority (`download_build`), at most `builds` at once. A new layer version, or an edit announced
for the layer, removes the layer's files; a build that an edit overtook starts again, so a file never misses an edit
announced before it was published.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from layers.catalogue.records import Layer
from layers.errors import Busy, DatabaseUnavailable, TooExpensive
from layers.queries import download_build

log = logging.getLogger("layers.downloads")
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class StoredFile:
    """A built download: where it is, and what HTTP says about it."""

    path: Path
    size: int
    modified: float
    etag: str


@functools.lru_cache(maxsize=4096)
def _folder_name(layer_id: str) -> str:
    """A file-system-safe, collision-free folder name for a layer id (remembered: every edit notice asks for one)."""
    readable = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "_" for c in layer_id)[:60]
    return f"{readable}-{hashlib.sha256(layer_id.encode()).hexdigest()[:12]}"


class DownloadStore:
    """The built downloads of every layer, under one folder."""

    def __init__(self, root: Path, database_url: str, *, builds: int = 1, timeout_s: float = 900) -> None:
        self.root = root
        self.database_url = database_url
        self.timeout_ms = int(timeout_s * 1000)
        self._slots = asyncio.Semaphore(builds)
        self._builds: dict[tuple[str, int, str], asyncio.Task[None]] = {}
        self._edits: Counter[str] = Counter()
        self._clears = 0

    def path(self, layer: Layer, suffix: str) -> Path:
        return self.root / _folder_name(layer.id) / f"v{layer.version}.{suffix}"

    def stored(self, layer: Layer, suffix: str) -> StoredFile | None:
        """The built file, if there is one."""
        path = self.path(layer, suffix)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        tag = hashlib.sha256(f"{layer.id}\0{layer.version}\0{stat.st_mtime_ns}\0{stat.st_size}".encode()).hexdigest()
        return StoredFile(path, stat.st_size, stat.st_mtime, f'"{tag[:32]}"')

    async def get(self, layer: Layer, suffix: str) -> StoredFile:
        """The file, built first if needed (one build however many ask; it outlives the caller)."""
        while (found := self.stored(layer, suffix)) is None:
            key = (layer.id, layer.version, suffix)
            task = self._builds.get(key)
            if task is None:
                task = asyncio.create_task(self._build(layer, suffix), name=f"download {layer.id}.{suffix}")
                self._builds[key] = task
                task.add_done_callback(self._finished)
            await asyncio.shield(task)
        return found

    def _finished(self, task: asyncio.Task[None]) -> None:
        for key, running in list(self._builds.items()):
            if running is task:
                del self._builds[key]
        if not task.cancelled() and task.exception() is not None:
            log.warning("a download build failed: %s", type(task.exception()).__name__)

    def _changes(self, layer_id: str) -> tuple[int, int]:
        return self._clears, self._edits[layer_id]

    async def _build(self, layer: Layer, suffix: str) -> None:
        final = self.path(layer, suffix)
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(f".{final.name}.{os.getpid()}.partial")
        try:
            async with self._slots:
                for _ in range(MAX_ATTEMPTS):
                    before = self._changes(layer.id)
                    await self._run_builder(layer, suffix, partial)
                    if self._changes(layer.id) == before:
                        break
                    log.info("%s.%s: an edit came during the build; building again", layer.id, suffix)
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)
        for other in final.parent.glob(f"v*.{suffix}"):
            if other != final:
                other.unlink(missing_ok=True)  # an older version's file
        log.info("%s.%s built: %d bytes", layer.id, suffix, final.stat().st_size)

    async def _run_builder(self, layer: Layer, suffix: str, partial: Path) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            download_build.__name__,
            layer.id,
            str(layer.version),
            suffix,
            str(partial),
            f"--timeout-ms={self.timeout_ms}",
            env={**os.environ, "GEOSERVER_DATABASE_URL": self.database_url},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, errors = await process.communicate()
        except asyncio.CancelledError:
            process.kill()
            await process.wait()
            raise
        status = process.returncode
        if status == download_build.STALE:
            raise Busy("the layer changed while its download was being built; retry", retry_after_s=1)
        if status == download_build.UNREACHABLE:
            raise DatabaseUnavailable("the database is unavailable; retry shortly", retry_after_s=5)
        if status == download_build.TOO_LONG:
            raise TooExpensive(f"building this download took longer than {self.timeout_ms // 1000} s", retry_after_s=60)
        if status != 0:
            raise RuntimeError(f"download build failed ({status}): {errors.decode(errors='replace')[-500:]}")

    def invalidate(self, layer_id: str) -> None:
        """The layer's data changed: its files go, and builds under way start again."""
        self._edits[layer_id] += 1
        # Every edit of every layer comes here: one system call when the layer has no files (the usual case).
        with (
            contextlib.suppress(FileNotFoundError, NotADirectoryError),
            os.scandir(self.root / _folder_name(layer_id)) as found,
        ):
            for entry in found:
                if entry.name.startswith("v"):
                    Path(entry.path).unlink(missing_ok=True)

    def clear(self) -> None:
        """Forget every file (changes may have been missed, e.g. while the database was unreachable)."""
        self._clears += 1
        for folder in self.root.glob("*") if self.root.is_dir() else ():
            for path in folder.glob("v*"):
                path.unlink(missing_ok=True)

    async def close(self) -> None:
        """Stop the builds under way (at shutdown); their partial files are removed."""
        tasks = list(self._builds.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
