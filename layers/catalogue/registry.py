"""The registry: every catalogue layer, loaded from the database and resolved per caller.

A layer the caller may not see resolves exactly like one that does not exist.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from layers.catalogue.models import FIELDS_TABLE, GROUPS_TABLE, LAYERS_TABLE, LayerRow
from layers.catalogue.records import MANAGED, Field, Layer
from layers.catalogue.visibility import Principal
from layers.errors import InvalidParameter, LayerNotFound
from layers.sqlcompose import render

# The record's attributes that are catalogue columns of the same name; `fields` and `bbox` are derived.
# Unpublished layers (`deleted_at` set) are not loaded: for the server they do not exist.
RECORD_COLUMNS = tuple(f.name for f in dataclasses.fields(Layer) if f.name in LayerRow.__table__.c)
_TUPLES = {
    "keywords",
    "shared_groups",
    "searchable_fields",
}  # JSON arrays in the catalogue, tuples in the (frozen) record


class Registry:
    """All catalogue layers, resolved per caller."""

    def __init__(self, layers: Iterable[Layer] = ()) -> None:
        self._layers: dict[str, Layer] = {layer.id: layer for layer in layers}

    def __len__(self) -> int:
        return len(self._layers)

    def resolve(self, layer_id: str, principal: Principal) -> Layer:
        """The layer named `layer_id` if the caller may see it; otherwise LayerNotFound, as for a missing one."""
        layer = self._layers.get(layer_id)
        if layer is None or not principal.can_see(layer):
            raise LayerNotFound(layer_id)
        return layer

    def resolve_many(self, names: Sequence[str], principal: Principal, *, cap: int, parameter: str) -> list[Layer]:
        """Several layers by id, repeats removed in order, at most `cap`; LayerNotFound for any the caller can't see."""
        wanted = list(dict.fromkeys(names))
        if any(not name for name in wanted):
            raise InvalidParameter("the layer list has an empty name", parameter=parameter)
        if len(wanted) > cap:
            raise InvalidParameter(f"at most {cap} layers", parameter=parameter)
        return [self.resolve(name, principal) for name in wanted]

    def count_changed(self, layer_id: str, delta: int) -> None:
        """Follow an edit's change in a layer's feature count without reloading the catalogue."""
        layer = self._layers.get(layer_id)
        if layer is not None and delta:
            self._layers[layer_id] = dataclasses.replace(layer, feature_count=max(0, layer.feature_count + delta))

    def all_layers(self) -> list[Layer]:
        """Every layer whatever its visibility: for building per-layer machinery, never for answering a caller."""
        return [layer for _, layer in sorted(self._layers.items())]

    def visible(self, principal: Principal) -> list[Layer]:
        """Every layer the caller may see, sorted by id."""
        return [layer for _, layer in sorted(self._layers.items()) if principal.can_see(layer)]

    @classmethod
    def from_rows(cls, layer_rows: Sequence[Mapping[str, Any]], field_rows: Sequence[Mapping[str, Any]]) -> Registry:
        """Build the registry from catalogue rows (public field rows only)."""
        fields: dict[str, list[Field]] = {}
        for row in field_rows:
            fields.setdefault(row["layer_id"], []).append(
                Field(name=row["name"], data_type=row["data_type"], description=row["description"])
            )
        layers = []
        for row in layer_rows:
            values = {name: row[name] for name in RECORD_COLUMNS}
            for name in _TUPLES:
                values[name] = tuple(values[name] or ())
            bbox = None
            if row["xmin"] is not None:
                bbox = (float(row["xmin"]), float(row["ymin"]), float(row["xmax"]), float(row["ymax"]))
            publisher = row["publisher"] or row["department"]
            layers.append(
                Layer(
                    **values,
                    fields=tuple(fields.get(row["id"], ())),
                    bbox=bbox,
                    publisher=publisher,
                    count_kept=bool(row["count_kept"]),
                    id_indexed=bool(row["id_indexed"]),
                )
            )
        return cls(layers)

    @classmethod
    async def load(cls, conn: AsyncConnection[Any]) -> Registry:
        """Load every layer from the catalogue tables."""
        async with conn.cursor(row_factory=dict_row) as cur:
            layer_rows = await (await cur.execute(LAYERS_QUERY)).fetchall()
            field_rows = await (await cur.execute(PUBLIC_FIELDS_QUERY)).fetchall()
        return cls.from_rows(layer_rows, field_rows)


LAYERS_QUERY = render(
    sql.SQL(
        "SELECT {columns}, ST_XMin(l.extent) AS xmin, ST_YMin(l.extent) AS ymin, ST_XMax(l.extent) AS xmax, "
        "ST_YMax(l.extent) AS ymax, CASE WHEN l.is_community THEN g.name ELSE l.department END AS publisher, "
        "l.source_kind = {managed} OR EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = "
        "to_regclass(format('%I.%I', l.table_schema, l.table_name)) AND tgname = {trigger}) AS count_kept, "
        "EXISTS (SELECT 1 FROM pg_index AS i JOIN pg_attribute AS a ON a.attrelid = i.indrelid "
        "AND a.attnum = i.indkey[0] JOIN pg_am AS m ON m.oid = (SELECT relam FROM pg_class WHERE oid = i.indexrelid) "
        "WHERE i.indrelid = to_regclass(format('%I.%I', l.table_schema, l.table_name)) AND a.attname = l.id_column "
        "AND m.amname = 'btree') AS id_indexed "
        "FROM {layers} AS l LEFT JOIN {groups} AS g ON g.id = l.group_id WHERE l.deleted_at IS NULL ORDER BY l.id"
    ).format(
        columns=sql.SQL(", ").join(sql.Identifier("l", name) for name in RECORD_COLUMNS),
        layers=LAYERS_TABLE,
        groups=GROUPS_TABLE,
        managed=sql.Literal(MANAGED),
        # install_change_triggers' insert trigger; its statement triggers keep feature_count exact.
        trigger=sql.Literal("geoserver_announce_insert"),
    )
)

# Private fields are filtered out here, in the database: they never reach Python.
PUBLIC_FIELDS_QUERY = render(
    sql.SQL(
        "SELECT f.layer_id, f.name, f.data_type, f.description FROM {fields} AS f JOIN {layers} AS l "
        "ON l.id = f.layer_id WHERE f.is_public AND l.deleted_at IS NULL ORDER BY f.layer_id, f.position"
    ).format(fields=FIELDS_TABLE, layers=LAYERS_TABLE)
)


def load_registry(database_url: str) -> Registry:
    """The registry read on a connection of its own, for the command line and tools (the server keeps one)."""

    async def load() -> Registry:
        async with await AsyncConnection.connect(database_url) as conn:
            return await Registry.load(conn)

    return asyncio.run(load())
