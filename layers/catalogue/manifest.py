"""Layer manifests: the YAML description of one City layer, as written by City GIS staff."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from layers.errors import ManifestError

GeometryType = Literal["Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon", "Geometry"]
UpdateFrequency = Literal["continual", "daily", "weekly", "monthly", "quarterly", "annual", "irregular", "never"]
LANGUAGES = ("en", "fr")
LAYER_ID_FORBIDDEN = frozenset("/\\,?#%")
MAX_IDENTIFIER_BYTES = 63  # PostgreSQL truncates longer names silently; we refuse them instead.
BOUNDARIES_CATEGORY = "boundaries"  # wards, communities, service zones: what `/here` answers with


def overlay_serves_people(category: str) -> bool:
    """Whether a community overlay is searched by `/nearby` by default: what groups share (events, gardens, food
    banks) is for people near it, except boundaries, which are `/here`'s answer (at 0 m they would hide services)."""
    return category != BOUNDARIES_CATEGORY


class Translated(BaseModel):
    """A text in English and, when the City has one, in French (asked for, not required: English stands in)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    en: str = Field(min_length=1)
    fr: str | None = Field(default=None, min_length=1)

    def get(self, lang: str) -> str:
        """The text in `lang`, English when that language is unknown or missing."""
        return self.fr if lang == "fr" and self.fr else self.en

    def stored(self) -> dict[str, str]:
        """The languages given, as the catalogue keeps them (a missing translation is absent, not null)."""
        return {lang: text for lang, text in (("en", self.en), ("fr", self.fr)) if text}


class License(BaseModel):
    """The licence under which a layer is published."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    url: str | None = None


class Source(BaseModel):
    """Where a layer's rows come from: a file to ingest, or a table or view published in place."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    file: str | None = None
    table: str | None = None  # "schema.table" or "table" (schema public)
    crs: str | None = None  # e.g. "EPSG:3776", for files that carry no CRS of their own
    layer: str | None = None  # layer name inside a multi-layer file (GeoPackage)

    @model_validator(mode="after")
    def _one_source(self) -> Source:
        if (self.file is None) == (self.table is None):
            raise ValueError("give exactly one of source.file and source.table")
        return self


class TimeFields(BaseModel):
    """The fields that place a feature in time: an instant (start only) or an interval."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    start: str
    end: str | None = None


def _check_identifier(name: str) -> str:
    if not name or "\x00" in name:
        raise ValueError("a name must be non-empty and contain no NUL character")
    if len(name.encode()) > MAX_IDENTIFIER_BYTES:
        raise ValueError(f"{name[:20]!r}... is longer than {MAX_IDENTIFIER_BYTES} bytes")
    return name


def check_layer_id(value: str) -> str:
    """A layer id may hold quotes, spaces and mixed case, but nothing that breaks a URL path or a list."""
    _check_identifier(value)
    if value != value.strip() or value in {".", ".."}:
        raise ValueError("a layer id must not start or end with white space, nor be '.' or '..'")
    if any(ch in LAYER_ID_FORBIDDEN or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("a layer id must not contain '/', '\\', ',', '?', '#', '%' or control characters")
    return value


class LayerManifest(BaseModel):
    """One City layer: identity, metadata, source, and which fields may leave the database."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    title: Translated
    description: Translated
    category: str
    department: str
    license: License
    update_frequency: UpdateFrequency = "irregular"
    demo: bool = False
    source: Source
    geometry_type: GeometryType = "Geometry"
    id_field: str | None = None
    public_fields: tuple[str, ...] = ()
    field_descriptions: dict[str, Translated] = Field(default_factory=dict)
    time_fields: TimeFields | None = None
    category_field: str | None = None
    opening_hours_field: str | None = None
    min_zoom: int = Field(default=0, ge=0, le=24)
    max_zoom: int = Field(default=22, ge=0, le=24)
    visibility: str = "public"  # "public" or "group:<group id>"
    keywords: tuple[str, ...] = ()
    serves_people: bool = False  # searched by /nearby when no layers are named: facilities, events
    searchable_fields: tuple[str, ...] = ()  # public fields /search reads (names, addresses)
    require_if_match: bool = False  # edits must send If-Match
    community: bool = False  # an overlay uploaded by a community group (its owner), not City data
    owner: str | None = None  # the owner group of a community overlay (also when it is public)
    shared_groups: tuple[str, ...] = ()  # groups that see a non-public layer besides its owner
    private_fields: tuple[str, ...] = ()  # an overlay's fields kept private (its public ones are all the others)

    @field_validator("id")
    @classmethod
    def _layer_id(cls, value: str) -> str:
        return check_layer_id(value)

    @field_validator("public_fields")
    @classmethod
    def _names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            _check_identifier(name)
        if len(set(names)) != len(names):
            raise ValueError("public_fields lists a field twice")
        return names

    @field_validator("visibility")
    @classmethod
    def _visibility(cls, value: str) -> str:
        if value != "public" and not (value.startswith("group:") and len(value) > len("group:")):
            raise ValueError("visibility must be 'public' or 'group:<group id>'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> LayerManifest:
        if self.min_zoom > self.max_zoom:
            raise ValueError("min_zoom is greater than max_zoom")
        public = set(self.public_fields)
        named = {
            "category_field": self.category_field,
            "opening_hours_field": self.opening_hours_field,
            "time_fields.start": self.time_fields.start if self.time_fields else None,
            "time_fields.end": self.time_fields.end if self.time_fields else None,
        }
        for role, name in named.items():
            if name is not None and name not in public:
                raise ValueError(f"{role} {name!r} must also be listed in public_fields")
        unknown = set(self.field_descriptions) - public
        if unknown:
            raise ValueError(f"field_descriptions names fields that are not public: {sorted(unknown)}")
        if public & set(self.private_fields):
            raise ValueError("a field cannot be both public and private")
        if not set(self.searchable_fields) <= public:
            raise ValueError("searchable_fields must also be listed in public_fields")
        if self.community and self.group is None:
            raise ValueError("a community overlay needs its owner group")
        return self

    @property
    def missing_translations(self) -> tuple[str, ...]:
        """The texts with no French version (`title`, `description`), for which English is used."""
        return tuple(name for name, text in (("title", self.title), ("description", self.description)) if not text.fr)

    @property
    def group(self) -> str | None:
        """The owner group: a community overlay's group, or the group a non-public City layer belongs to."""
        if self.owner is not None:
            return self.owner
        return None if self.visibility == "public" else self.visibility.removeprefix("group:")

    @property
    def is_public(self) -> bool:
        """True when anyone may see the layer."""
        return self.visibility == "public"


def load_manifest(path: Path) -> LayerManifest:
    """Read and validate one manifest file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ManifestError(f"{path.name}: cannot read the manifest ({exc.__class__.__name__})") from exc
    try:
        return LayerManifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'manifest'}: {err['msg']}" for err in exc.errors()
        )
        raise ManifestError(f"{path.name}: {problems}") from exc


def city_manifest_dir() -> Path:
    """The folder holding the City's own layer manifests."""
    return Path(__file__).resolve().parent / "city"


def load_city_manifests(folder: Path | None = None) -> list[LayerManifest]:
    """All manifests of a folder (the City's by default), sorted by file name."""
    folder = folder or city_manifest_dir()
    manifests = [load_manifest(p) for p in sorted(folder.glob("*.yaml"))]
    ids = [m.id for m in manifests]
    if len(set(ids)) != len(ids):
        raise ManifestError(f"two manifests in {folder.name}/ share a layer id")
    return manifests
