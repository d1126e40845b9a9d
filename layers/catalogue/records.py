"""The catalogue record of a layer (`Layer`) as the rest of the server sees it, with its public fields only.

A `Layer` carries only public fields: private field names never enter it, so nothing built from it can select,
filter on, or describe them. Its attributes are the catalogue table's columns (`models.LayerRow`) of the same
names, plus the public `fields` and the `bbox` of the stored extent: `Registry` fills them by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from psycopg import sql

from layers.catalogue.fieldtypes import Kind, kind_of
from layers.errors import InvalidParameter

MANAGED = "managed"  # source_kind of a layer whose table the server owns (loaded from a file)
IN_PLACE = "table"  # source_kind of a table or view published in place (read-only)


@dataclass(frozen=True)
class Field:
    """One public field of a layer."""

    name: str
    data_type: str
    description: Mapping[str, str] | None = None

    @property
    def kind(self) -> Kind:
        """What kind of value the field holds."""
        return kind_of(self.data_type)


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
    group_id: str | None  # the owner group: a community group's overlay, or a City layer restricted to a group
    is_public: bool
    shared_groups: tuple[str, ...]  # groups that see the layer besides its owner
    is_community: bool  # uploaded by a community group, not City data
    serves_people: bool  # searched by /nearby when no layers are named (facilities, events, community overlays)
    searchable_fields: tuple[str, ...]  # public fields /search reads
    require_if_match: bool  # edits must send If-Match
    bbox: tuple[float, float, float, float] | None
    publisher: str  # who publishes it: the City department, or the community group's name
    temporal_start: datetime | None
    temporal_end: datetime | None
    feature_count: int
    version: int
    updated_at: datetime
    # True when the catalogue's feature_count is exact: a managed table, or a table published in place whose change
    # triggers keep it (a view has none, so its count is always asked of the database). Read with the catalogue.
    count_kept: bool = False
    # True when a btree index leads with the id column (a primary key does): offsets skip through it. Read with
    # the catalogue.
    id_indexed: bool = False
    _by_name: Mapping[str, Field] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name: f for f in self.fields})

    @property
    def visibility(self) -> str:
        """Who sees the layer, as the API writes it: `public`, `group:<owner>` or `groups:<owner>,<shared>,...`."""
        if self.is_public:
            return "public"
        viewers = [g for g in (self.group_id, *self.shared_groups) if g is not None]
        return f"group:{viewers[0]}" if len(viewers) == 1 else "groups:" + ",".join(dict.fromkeys(viewers))

    @property
    def table(self) -> sql.Identifier:
        """The layer's table, quoted for SQL."""
        return sql.Identifier(self.table_schema, self.table_name)

    @property
    def id_kind(self) -> str:
        """How the layer's ids look, as `Field.kind` says (`integer`, `string`, `number`...); a layer without an id
        field numbers its features."""
        declared = self._by_name.get(self.id_column)
        return declared.kind if declared is not None else ("integer" if self.id_column == "fid" else "string")

    @property
    def field_names(self) -> tuple[str, ...]:
        """Names of the public fields, in table order."""
        return tuple(f.name for f in self.fields)

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages in which both the title and the description exist (English always; French if given)."""
        return tuple(lang for lang in ("en", "fr") if self.title.get(lang) and self.description.get(lang))

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

    def public_field(self, name: str | None) -> str | None:
        """`name` when it is one of the public fields, else None (a role the manifest gives a private field is
        never used: filtering on it would be a yes/no oracle on its values)."""
        return name if name is not None and name in self._by_name else None
