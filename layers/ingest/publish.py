"""Publishing manifests: the one entry point for loading a City layer, whatever its source."""

from __future__ import annotations

import logging
import multiprocessing
import queue
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from layers.catalogue.journal import announce, audit
from layers.catalogue.manifest import LayerManifest, city_manifest_dir
from layers.catalogue.models import CATALOG_SCHEMA, LAYER_SCHEMA, LAYERS_TABLE
from layers.catalogue.records import MANAGED
from layers.errors import (
    DatabaseUnavailable,
    GeoServerError,
    IngestError,
    InvalidParameter,
    ManifestError,
    TooLarge,
    is_connection_failure,
)
from layers.sqlcompose import Slot, render

if TYPE_CHECKING:  # the ingest stack (GDAL, geopandas) is imported only where a load actually runs
    from layers.ingest.load import Progress
    from layers.ingest.overlays import OverlaySpec
    from layers.ingest.register import LoadResult


def publish(
    database_url: str,
    manifest: LayerManifest,
    *,
    manifest_dir: Path | None = None,
    data_dir: Path | None = None,
    file: Path | None = None,
    crs: str | None = None,
    progress: Progress | None = None,
    replace_edits: bool = True,
) -> LoadResult:
    """Load or publish one layer described by `manifest` (its file, `file` if given, or its table); without
    `replace_edits`, a file is not loaded over features written through the API since the last load."""
    from layers.ingest.in_place import publish_table
    from layers.ingest.load import load_file, resolve_source

    if manifest.source.table is not None and file is None:
        return publish_table(database_url, manifest, replace_edits=replace_edits)
    path = file or resolve_source(manifest, manifest_dir or city_manifest_dir(), data_dir)
    if progress is None:
        return load_file(database_url, manifest, path, crs=crs, replace_edits=replace_edits)
    return load_file(database_url, manifest, path, crs=crs, progress=progress, replace_edits=replace_edits)


@dataclass(frozen=True)
class Upload:
    """A file a group uploaded: a new overlay (`spec`) or a new version of one (`stored`, its current manifest)."""

    path: Path
    spec: OverlaySpec | None
    stored: LayerManifest | None
    max_features: int
    max_upload_bytes: int
    actor: str


@dataclass(frozen=True)
class Job:
    """One layer to publish: its manifest, and optionally a file (and its CRS) instead of the manifest's source."""

    manifest: LayerManifest | None
    file: Path | None = None
    crs: str | None = None
    manifest_dir: Path | None = None
    upload: Upload | None = None
    replace_edits: bool = True  # False: refuse to load over features written through the API since the last load

    @property
    def layer_id(self) -> str:
        """The id of the layer the job publishes."""
        if self.manifest is not None:
            return self.manifest.id
        assert self.upload is not None
        return (
            self.upload.spec.id if self.upload.spec is not None else str(self.upload.stored and self.upload.stored.id)
        )


log = logging.getLogger("geoserver.ingest")
JobProgress = Callable[[str, str, int, int], None]  # layer id, stage, done, total
# Errors a child reports keep their kind, so an upload's 413 or 400 stays one; anything else is an IngestError.
_KINDS: dict[str, type[GeoServerError]] = {
    k.__name__: k for k in (IngestError, InvalidParameter, TooLarge, ManifestError, DatabaseUnavailable)
}
RETRY_AFTER_S = 5  # when the database went away during a load


def _run(job: Job, database_url: str, data_dir: Path | None, report: Progress) -> LoadResult:
    from layers.ingest.overlays import ingest_upload

    if job.upload is not None:
        u = job.upload
        return ingest_upload(
            database_url, u.path, spec=u.spec, stored=u.stored, max_features=u.max_features,
            max_upload_bytes=u.max_upload_bytes, actor=u.actor, progress=report,
        )  # fmt: skip
    assert job.manifest is not None
    return publish(
        database_url, job.manifest, manifest_dir=job.manifest_dir, data_dir=data_dir, file=job.file, crs=job.crs,
        progress=report, replace_edits=job.replace_edits,
    )  # fmt: skip


def _child(out: Any, database_url: str, jobs: list[Job], data_dir: Path | None) -> None:
    for job in jobs:
        layer = job.layer_id

        def report(stage: str, done: int, total: int, layer: str = layer) -> None:
            out.put(("progress", (layer, stage, done, total)))

        try:
            result = _run(job, database_url, data_dir, report)
        except GeoServerError as exc:
            out.put(("error", (type(exc).__name__, exc.message, exc.parameter, layer, None)))
            return
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises a clean error
            if is_connection_failure(exc):  # the database went away (a restart): nothing was published, retry
                message = "the database became unavailable during the load; nothing was published: retry shortly"
                out.put(("error", ("DatabaseUnavailable", message, None, layer, None)))
                return
            detail = f"{exc.__class__.__name__}: {str(exc)[:300]}"
            if job.upload is None:  # City staff at the command line: the detail helps
                message, logged = f"unexpected {detail} (while loading)", None
            else:  # an uploader's answer carries no library's internals (statements, paths): the log has them
                message, logged = (
                    "the file could not be loaded: this server cannot read something in it (logged)",
                    detail,
                )
            out.put(("error", ("IngestError", message, None, layer, logged)))
            return
        out.put(("done", result))
    out.put(("finished", None))


def publish_in_subprocess(
    database_url: str,
    jobs: list[Job],
    *,
    data_dir: Path | None = None,
    progress: JobProgress | None = None,
) -> list[LoadResult]:
    """Publish layers one after another in a separate process: GDAL and a large file's memory stay out of ours.

    Each layer is its own transaction. If the child dies (killed, out of memory), PostgreSQL rolls back the layer
    it was loading, whose previous version stays as it was; the layers finished before it stay published.
    """
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    child = context.Process(target=_child, args=(messages, database_url, jobs, data_dir), daemon=True)
    child.start()
    results: list[LoadResult] = []
    try:
        while True:
            try:
                kind, payload = messages.get(timeout=0.5)
            except queue.Empty:
                if not child.is_alive():
                    raise IngestError(
                        f"the load stopped unexpectedly (exit code {child.exitcode}) after {len(results)} of "
                        f"{len(jobs)} layers; the layer it was loading keeps its previous version"
                    ) from None
                continue
            if kind == "progress" and progress is not None:
                progress(*payload)
            elif kind == "done":
                results.append(payload)
            elif kind == "finished":
                return results
            elif kind == "error":
                raise _error(*payload, named=any(job.upload is None for job in jobs))
    finally:
        child.join(timeout=5)
        if child.is_alive():
            child.kill()


def _error(
    kind: str, message: str, parameter: str | None, layer: str, logged: str | None, *, named: bool
) -> GeoServerError:
    """A child's error in the parent, of the same kind; named after its layer for the command line. What the child
    kept from the answer is logged here, through the server's logging (the child has none of its own)."""
    if logged is not None:
        log.warning("an upload to %s failed: %s", layer, logged)
    if kind == DatabaseUnavailable.__name__:
        return DatabaseUnavailable(f"{layer}: {message}" if named else message, retry_after_s=RETRY_AFTER_S)
    return _KINDS.get(kind, IngestError)(f"{layer}: {message}" if named else message, parameter=parameter)


def catalogue_size(database_url: str) -> int:
    """How many layers the catalogue holds (0 when the catalogue tables do not exist yet)."""
    with psycopg.connect(database_url) as conn:
        exists = conn.execute(_EXISTS, {"name": f"{CATALOG_SCHEMA}.layers"}).fetchone()
        if exists is None or exists[0] is None:
            return 0
        row = conn.execute(render(sql.SQL("SELECT count(*) FROM {}").format(LAYERS_TABLE))).fetchone()
        return int(row[0]) if row else 0


def api_writes(database_url: str, layer_ids: Sequence[str]) -> dict[str, int]:
    """The layers among these whose features were written through the API since their last load, and how many."""
    from layers.ingest.register import api_writes_since_load

    with psycopg.connect(database_url) as conn:
        counts = {layer_id: api_writes_since_load(conn, layer_id) for layer_id in layer_ids}
    return {layer_id: count for layer_id, count in counts.items() if count}


_EXISTS = render(sql.SQL("SELECT to_regclass({})").format(Slot("name")))
_DELETE = render(
    sql.SQL("DELETE FROM {} WHERE id = {} RETURNING source_kind, table_schema, table_name").format(
        LAYERS_TABLE, Slot("id")
    )
)


def unpublish(database_url: str, layer_id: str, *, actor: str = "cli") -> bool:
    """Take a layer out of the catalogue, drop its managed table (a table published in place is only detached).

    Returns False when there was no such layer. Running servers drop the layer and its tiles on the notice.
    """
    with psycopg.connect(database_url) as conn, conn.transaction():
        row = conn.execute(_DELETE, {"id": layer_id}).fetchone()
        if row is None:
            return False
        kind, schema, table = row
        target = sql.Identifier(schema, table)
        if kind == MANAGED and schema == LAYER_SCHEMA:
            conn.execute(render(sql.SQL("DROP TABLE IF EXISTS {}").format(target)))
        else:
            for event in ("insert", "update", "delete", "truncate"):
                trigger = sql.Identifier(f"geoserver_announce_{event}")
                conn.execute(render(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(trigger, target)))
        conn.execute(*audit(actor, "remove", layer_id, {}))
        conn.execute(*announce({"layer": layer_id, "kind": "remove"}))
    return True
