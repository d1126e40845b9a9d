"""Changes to a layer's catalogue entry that are not new data: metadata, who sees it, unpublishing and restoring.

Each runs in the caller's transaction, bumps the layer's version (so no cache keeps an answer built for the old
entry), writes the audit log and tells every server to reload the catalogue, all at commit.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql

from layers.catalogue.journal import announce, audit
from layers.catalogue.manifest import LayerManifest, Translated, overlay_serves_people
from layers.catalogue.models import AUDIT_TABLE, GROUPS_TABLE, LAYERS_TABLE
from layers.errors import Conflict, InvalidParameter, LayerNotFound
from layers.sqlcompose import Slot, render

EDITABLE = ("title", "description", "category", "min_zoom", "max_zoom")  # what an editor may change
UPLOAD_ACTIONS = ("upload", "replace")
HOUR_S = 3600

_STORED = render(
    sql.SQL("SELECT manifest, deleted_at, is_community, group_id FROM {} WHERE id = {} FOR UPDATE").format(
        LAYERS_TABLE, Slot("id")
    )
)
_EXISTS = render(sql.SQL("SELECT 1 FROM {} WHERE id = {}").format(LAYERS_TABLE, Slot("id")))
_GROUPS_EXIST = render(sql.SQL("SELECT id FROM {} WHERE id = ANY({}::text[])").format(GROUPS_TABLE, Slot("ids")))
_GROUP_LAYERS = render(
    sql.SQL("SELECT count(*) FROM {} WHERE group_id = {} AND is_community AND deleted_at IS NULL").format(
        LAYERS_TABLE, Slot("group")
    )
)
_RECENT_UPLOADS = render(
    sql.SQL(
        "SELECT count(*), min(at) FROM {} WHERE group_id = {} AND action = ANY({}::text[]) "
        "AND at > now() - interval '1 hour'"
    ).format(AUDIT_TABLE, Slot("group"), Slot("actions"))
)
_NOW = b"SELECT now()"


async def stored_manifest(conn: AsyncConnection[Any], layer_id: str) -> tuple[LayerManifest, datetime | None]:
    """A layer's manifest as last stored, and when it was unpublished (None when it is published); locks the row."""
    cur = await conn.execute(_STORED, {"id": layer_id})
    row = await cur.fetchone()
    if row is None:
        raise LayerNotFound(layer_id)
    return LayerManifest.model_validate(row[0]), row[1]


async def id_taken(conn: AsyncConnection[Any], layer_id: str) -> bool:
    """True when a layer with this id exists, published or not (an unpublished overlay keeps its id)."""
    return await (await conn.execute(_EXISTS, {"id": layer_id})).fetchone() is not None


async def group_layer_count(conn: AsyncConnection[Any], group_id: str) -> int:
    """How many published overlays a group owns."""
    row = await (await conn.execute(_GROUP_LAYERS, {"group": group_id})).fetchone()
    return int(row[0]) if row else 0


async def uploads_in_last_hour(conn: AsyncConnection[Any], group_id: str) -> tuple[int, int]:
    """How many uploads the group made in the last hour, and seconds until the oldest of them is an hour old."""
    row = await (await conn.execute(_RECENT_UPLOADS, {"group": group_id, "actions": list(UPLOAD_ACTIONS)})).fetchone()
    count, oldest = (int(row[0]), row[1]) if row else (0, None)
    if oldest is None:
        return count, 0
    now_row = await (await conn.execute(_NOW)).fetchone()
    assert now_row is not None
    return count, max(1, HOUR_S - int((now_row[0] - oldest).total_seconds()))


async def parse_visibility(conn: AsyncConnection[Any], value: Any, owner: str | None) -> tuple[bool, tuple[str, ...]]:
    """`public`, `group:<owner>` or `groups:<owner>,<gid>,...` as (is public, groups shared with besides the owner)."""
    if value == "public":
        return True, ()
    if not isinstance(value, str) or not value.startswith(("group:", "groups:")):
        raise InvalidParameter("visibility is public, group:<gid> or groups:<gid>,<gid>,...", parameter="visibility")
    names = [n.strip() for n in value.partition(":")[2].split(",")]
    if owner is None or owner not in names or (value.startswith("group:") and names != [owner]):
        raise InvalidParameter(f"visibility must include the owner group {owner!r}", parameter="visibility")
    shared = tuple(dict.fromkeys(n for n in names if n != owner))
    known = {r[0] for r in await (await conn.execute(_GROUPS_EXIST, {"ids": list(shared)})).fetchall()}
    unknown = [n for n in shared if n not in known]
    if unknown:
        raise InvalidParameter(f"no group named {unknown[0][:80]!r}", parameter="visibility")
    return False, shared


def merge_metadata(manifest: LayerManifest, changes: dict[str, Any]) -> LayerManifest:
    """The manifest with a merge-patch of editable metadata applied (titles as text or {en, fr})."""
    update: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in EDITABLE:
            raise InvalidParameter(f"{name[:40]!r} cannot be changed here", parameter=name[:40])
        if name in ("title", "description"):
            current = getattr(manifest, name)
            texts = {"en": value, "fr": value} if isinstance(value, str) else {**current.model_dump(), **(value or {})}
            try:
                update[name] = Translated.model_validate(texts)
            except ValueError:
                raise InvalidParameter(f"{name} is a non-empty text, or {{en, fr}} texts", parameter=name) from None
        else:
            update[name] = value
    if manifest.community and isinstance(update.get("category"), str):
        update["serves_people"] = overlay_serves_people(update["category"])  # an overlay's category decides it
    try:
        return LayerManifest.model_validate({**manifest.model_dump(), **update})
    except ValueError as exc:
        raise InvalidParameter(f"the change makes an invalid layer: {str(exc).splitlines()[-1][:200]}") from None


async def save_manifest(
    conn: AsyncConnection[Any], manifest: LayerManifest, actor: str, action: str, detail: dict[str, Any]
) -> None:
    """Write a changed manifest's catalogue columns, audit, announce."""
    columns = {
        "title": json.dumps(manifest.title.model_dump()), "description": json.dumps(manifest.description.model_dump()),
        "category": manifest.category, "min_zoom": manifest.min_zoom, "max_zoom": manifest.max_zoom,
        "is_public": manifest.is_public, "shared_groups": json.dumps(list(manifest.shared_groups)),
        "serves_people": manifest.serves_people, "manifest": manifest.model_dump_json(),
    }  # fmt: skip
    statement = sql.SQL("UPDATE {} SET {}, version = version + 1, updated_at = now() WHERE id = {}").format(
        LAYERS_TABLE, sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(n), Slot(n)) for n in columns),
        Slot("layer_id"),
    )  # fmt: skip
    await conn.execute(render(statement), {**columns, "layer_id": manifest.id})
    await conn.execute(*audit(actor, action, manifest.id, detail, group_id=manifest.group))
    await conn.execute(*announce({"layer": manifest.id, "kind": "reload"}))


async def set_published(conn: AsyncConnection[Any], layer_id: str, actor: str, *, published: bool) -> None:
    """Unpublish a layer (kept, restorable by City staff) or publish it again."""
    manifest, deleted_at = await stored_manifest(conn, layer_id)
    if (deleted_at is None) == published:
        raise Conflict(f"the layer is already {'published' if published else 'unpublished'}")
    statement = sql.SQL("UPDATE {} SET deleted_at = {}, version = version + 1, updated_at = now() WHERE id = {}")
    stamp = sql.SQL("NULL") if published else sql.SQL("now()")
    await conn.execute(render(statement.format(LAYERS_TABLE, stamp, Slot("id"))), {"id": layer_id})
    action = "restore" if published else "unpublish"
    await conn.execute(*audit(actor, action, layer_id, {}, group_id=manifest.group))
    await conn.execute(*announce({"layer": layer_id, "kind": "reload"}))
