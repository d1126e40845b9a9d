"""The layer catalogue as the rest of the server sees it: `Layer` records, callers, and the registry.

A `Layer` carries only public fields: private field names never enter it, so nothing built from it can select,
filter on, or describe them. A layer the caller may not see resolves exactly like one that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, Connection, sql
from psycopg.rows import dict_row

from layers.errors import InvalidParameter, LayerNotFound
from layers.models import CATALOG_SCHEMA


@dataclass(frozen=True)
class Field:
    """One public field of a layer."""

    name: str
    data_type: str
    description: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Principal:
    """Who is asking: anonymous, a member of some groups, or City staff."""

    subject: str | None = None
    groups: frozenset[str] = frozenset()
    is_staff: bool = False

    @property
    def is_anonymous(self) -> bool:
        """True for a caller with no credentials."""
        return self.subject is None

    def can_see(self, layer: Layer) -> bool:
        """Public layers for everyone; a group's layer for its members and City staff."""
        return layer.group_id is None or self.is_staff or layer.group_id in self.groups


ANONYMOUS = Principal()


@dataclass(frozen=True)
class Layer:
    """One catalogue layer, with its public fields only."""

    id: str
    title: Mapping[str, str]
    description: Mapping[str, str]
    category: str
    department: str
    license_name: str
    license_url: str | None
    update_frequency: str
    is_demo: bool
    keywords: tuple[str, ...]
    source_kind: str
    table_schema: str
    table_name: str
    id_column: str
    geometry_column: str
    geometry_3857_column: str | None
    geometry_type: str
    fields: tuple[Field, ...]
    time_start_field: str | None
    time_end_field: str | None
    category_field: str | None
    opening_hours_field: str | None
    min_zoom: int
    max_zoom: int
    group_id: str | None
    bbox: tuple[float, float, float, float] | None
    temporal_start: datetime | None
    temporal_end: datetime | None
    feature_count: int
    version: int
    updated_at: datetime
    _by_name: Mapping[str, Field] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name: f for f in self.fields})

    @property
    def is_public(self) -> bool:
        """True when anyone, anonymous included, may see the layer."""
        return self.group_id is None

    @property
    def table(self) -> sql.Identifier:
        """The layer's table, quoted for SQL."""
        return sql.Identifier(self.table_schema, self.table_name)

    @property
    def field_names(self) -> tuple[str, ...]:
        """Names of the public fields, in table order."""
        return tuple(f.name for f in self.fields)

    def title_in(self, lang: str) -> str:
        """The title in `lang`, English when that language is missing."""
        return self.title.get(lang) or self.title["en"]

    def description_in(self, lang: str) -> str:
        """The description in `lang`, English when that language is missing."""
        return self.description.get(lang) or self.description["en"]

    def field(self, name: str, *, parameter: str | None = None) -> Field:
        """A public field by name. Unknown and private names fail alike, so no caller can tell them apart."""
        try:
            return self._by_name[name]
        except KeyError:
            raise InvalidParameter(
                f"{name!r} is not a queryable property of this collection", parameter=parameter
            ) from None


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

    def count_changed(self, layer_id: str, delta: int) -> None:
        """Follow an edit's change in a layer's feature count without reloading the catalogue."""
        layer = self._layers.get(layer_id)
        if layer is not None and delta:
            self._layers[layer_id] = replace(layer, feature_count=max(0, layer.feature_count + delta))

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
            bbox = None
            if row["xmin"] is not None:
                bbox = (float(row["xmin"]), float(row["ymin"]), float(row["xmax"]), float(row["ymax"]))
            layers.append(
                Layer(
                    id=row["id"],
                    title=row["title"],
                    description=row["description"],
                    category=row["category"],
                    department=row["department"],
                    license_name=row["license_name"],
                    license_url=row["license_url"],
                    update_frequency=row["update_frequency"],
                    is_demo=row["is_demo"],
                    keywords=tuple(row["keywords"] or ()),
                    source_kind=row["source_kind"],
                    table_schema=row["table_schema"],
                    table_name=row["table_name"],
                    id_column=row["id_column"],
                    geometry_column=row["geometry_column"],
                    geometry_3857_column=row["geometry_3857_column"],
                    geometry_type=row["geometry_type"],
                    fields=tuple(fields.get(row["id"], ())),
                    time_start_field=row["time_start_field"],
                    time_end_field=row["time_end_field"],
                    category_field=row["category_field"],
                    opening_hours_field=row["opening_hours_field"],
                    min_zoom=row["min_zoom"],
                    max_zoom=row["max_zoom"],
                    group_id=row["group_id"],
                    bbox=bbox,
                    temporal_start=row["temporal_start"],
                    temporal_end=row["temporal_end"],
                    feature_count=row["feature_count"],
                    version=row["version"],
                    updated_at=row["updated_at"],
                )
            )
        return cls(layers)

    @classmethod
    def load(cls, conn: Connection[Any]) -> Registry:
        """Load every layer from the catalogue tables (blocking connection, for the command line)."""
        with conn.cursor(row_factory=dict_row) as cur:
            layer_rows = cur.execute(LAYERS_QUERY).fetchall()
            field_rows = cur.execute(PUBLIC_FIELDS_QUERY).fetchall()
        return cls.from_rows(layer_rows, field_rows)

    @classmethod
    async def aload(cls, conn: AsyncConnection[Any]) -> Registry:
        """Load every layer from the catalogue tables (async connection, for the server)."""
        async with conn.cursor(row_factory=dict_row) as cur:
            layer_rows = await (await cur.execute(LAYERS_QUERY)).fetchall()
            field_rows = await (await cur.execute(PUBLIC_FIELDS_QUERY)).fetchall()
        return cls.from_rows(layer_rows, field_rows)


LAYERS_QUERY = sql.SQL(
    """
    SELECT l.*, ST_XMin(l.extent) AS xmin, ST_YMin(l.extent) AS ymin,
           ST_XMax(l.extent) AS xmax, ST_YMax(l.extent) AS ymax
    FROM {layers} AS l ORDER BY l.id
    """
).format(layers=sql.Identifier(CATALOG_SCHEMA, "layers"))

# Private fields are filtered out here, in the database: they never reach Python.
PUBLIC_FIELDS_QUERY = sql.SQL(
    "SELECT layer_id, name, data_type, description FROM {fields} WHERE is_public ORDER BY layer_id, position"
).format(fields=sql.Identifier(CATALOG_SCHEMA, "layer_fields"))
