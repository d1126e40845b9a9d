"""Community overlays: a group's upload turned into a layer, its quotas, and the changes a group makes to it.

An overlay is a managed layer like any City layer (same ingest, same tables, same tiles), owned by a group
(`group_id`), marked as community content, and seen by its group only until a publisher makes it public. Every
field of the file is public to whoever may see the layer, except those the group lists as private.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from layers.catalogue.manifest import LayerManifest, check_layer_id, overlay_serves_people
from layers.errors import IngestError, InvalidParameter, TooLarge
from layers.ingest.frames import as_timestamps, read_frame
from layers.ingest.load import Progress, load_frame
from layers.ingest.register import LoadResult

COMMUNITY_CATEGORY = "community"
COMMUNITY_LICENCE = "Community contribution: shared by the publishing group, not City data"
ZIP_EXPANSION = 20  # an uploaded zip may unpack to this many times the largest upload at the most


@dataclass(frozen=True)
class OverlaySpec:
    """What a group says about its upload (the form fields of `POST /collections`)."""

    id: str
    title: str
    group: str
    group_name: str
    description: str | None = None
    category: str = COMMUNITY_CATEGORY
    crs: str | None = None
    id_field: str | None = None
    private_fields: tuple[str, ...] = ()
    time_start: str | None = None
    time_end: str | None = None
    opening_hours_field: str | None = None
    min_zoom: int = 0


def check_overlay_id(value: str) -> str:
    """An overlay id, as strict as a City layer id (the catalogue's rules), 400 naming `id` otherwise."""
    try:
        return check_layer_id(value)
    except ValueError as exc:
        raise InvalidParameter(f"id: {exc}", parameter="id") from None


def overlay_manifest(spec: OverlaySpec, columns: list[str]) -> LayerManifest:
    """The manifest of an overlay whose file has these columns: every column public but the private ones."""
    missing = [name for name in spec.private_fields if name not in columns]
    if missing:
        raise IngestError(
            f"private_fields names {missing[0]!r}, which the file does not have", parameter="private_fields"
        )
    public = [c for c in columns if c not in spec.private_fields]
    roles = {"id_field": spec.id_field, "time_start": spec.time_start, "time_end": spec.time_end,
             "opening_hours_field": spec.opening_hours_field}  # fmt: skip
    for role, name in roles.items():
        if name is not None and name not in public:
            raise IngestError(f"{role} {name!r} is not a public column of the file", parameter=role)
    description = spec.description or f"Shared by {spec.group_name}."
    data: dict[str, Any] = {
        "id": spec.id, "title": {"en": spec.title, "fr": spec.title},
        "description": {"en": description, "fr": description}, "category": spec.category,
        "department": spec.group_name, "license": {"name": COMMUNITY_LICENCE}, "update_frequency": "irregular",
        "source": {"file": "upload", "crs": spec.crs}, "id_field": spec.id_field, "public_fields": public,
        "private_fields": list(spec.private_fields), "opening_hours_field": spec.opening_hours_field,
        "min_zoom": spec.min_zoom, "visibility": f"group:{spec.group}", "community": True, "owner": spec.group,
        "serves_people": overlay_serves_people(spec.category), "keywords": ["community", spec.group],
    }  # fmt: skip
    if spec.time_start is not None:
        data["time_fields"] = {"start": spec.time_start, "end": spec.time_end}
    try:
        return LayerManifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "form"
        raise InvalidParameter(f"{where}: {first['msg']}", parameter=where.split(".")[0]) from None


def replacement_manifest(stored: LayerManifest, columns: list[str]) -> LayerManifest:
    """A new version's manifest: the same metadata and visibility, public fields from the new file's columns."""
    public = [c for c in columns if c not in stored.private_fields]
    for role, name in (("id_field", stored.id_field), ("opening_hours_field", stored.opening_hours_field),
                       ("time_start", stored.time_fields.start if stored.time_fields else None),
                       ("time_end", stored.time_fields.end if stored.time_fields else None)):  # fmt: skip
        if name is not None and name not in public:
            raise IngestError(f"the new file has no column {name!r}, the layer's {role}", parameter="file")
    return stored.model_copy(update={"public_fields": tuple(public)})


def ingest_upload(
    database_url: str,
    path: Path,
    *,
    spec: OverlaySpec | None,
    stored: LayerManifest | None,
    max_features: int,
    max_upload_bytes: int,
    actor: str,
    progress: Progress,
) -> LoadResult:
    """Read an uploaded file and store it as a new overlay (`spec`) or a new version of one (`stored`)."""
    crs = spec.crs if spec is not None else stored.source.crs if stored is not None else None
    progress("read", 0, 1)
    rows = read_frame(path, crs=crs, max_unzipped_bytes=ZIP_EXPANSION * max_upload_bytes)
    progress("read", 1, 1)
    if len(rows.frame) == 0:
        raise IngestError("the file holds no feature with a geometry", parameter="file")
    if len(rows.frame) > max_features:
        raise TooLarge(
            f"the file holds {len(rows.frame):,} features; an overlay of this group holds {max_features:,} at the most",
            parameter="file",
        )
    if spec is not None:
        manifest, action = overlay_manifest(spec, rows.columns), "upload"
    else:
        assert stored is not None
        manifest, action = replacement_manifest(stored, rows.columns), "replace"
    if manifest.time_fields is not None:
        as_timestamps(rows.frame, [manifest.time_fields.start, manifest.time_fields.end])
    return load_frame(database_url, manifest, rows, actor=actor, action=action, progress=progress)
