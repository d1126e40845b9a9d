"""The server's own tables: catalogue, fields, groups, memberships, API tokens, audit log.

Alembic migrations in `layers/catalogue/migrations/` create them; these models describe them for GeoAlchemy2/SQLAlchemy.
Managed layer tables live in their own schema (`LAYER_SCHEMA`) and are not modelled here: their columns come from
the files loaded into them. The `...Row` classes are the catalogue's rows as stored; `records.Layer` is what the rest
of the server sees of a layer, built from `LayerRow`'s columns by name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from psycopg import sql
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    LargeBinary,
    MetaData,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

CATALOG_SCHEMA = "geoserver"
LAYER_SCHEMA = "layer_data"
CHANGE_CHANNEL = "geoserver_layer_changed"  # NOTIFY channel: layer reloads and edits, with the changed extent


class Base(DeclarativeBase):
    """Declarative base bound to the catalogue schema."""

    metadata = MetaData(schema=CATALOG_SCHEMA)


class GroupRow(Base):
    """A community group (or a City team) that owns layers and whose members may see them.

    Quotas left empty take the server's defaults (settings)."""

    __tablename__ = "groups"
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    name_fr: Mapped[str | None] = mapped_column(Text)
    contact: Mapped[str | None] = mapped_column(Text)  # shown to City staff only
    max_upload_mb: Mapped[int | None] = mapped_column(Integer)
    max_features: Mapped[int | None] = mapped_column(BigInteger)
    max_layers: Mapped[int | None] = mapped_column(Integer)
    uploads_per_hour: Mapped[int | None] = mapped_column(Integer)
    require_if_match: Mapped[bool] = mapped_column(Boolean, server_default="false")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class MembershipRow(Base):
    """One subject's role in a group: viewer (sees its layers), editor (uploads and edits), publisher (shares)."""

    __tablename__ = "memberships"
    group_id: Mapped[str] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    subject: Mapped[str] = mapped_column(Text, primary_key=True)
    role: Mapped[str] = mapped_column(Text, server_default="viewer")
    __table_args__ = (CheckConstraint("role IN ('viewer', 'editor', 'publisher')", name="membership_role"),)


class LayerRow(Base):
    """One catalogue layer: metadata, where its rows are, and who may see it."""

    __tablename__ = "layers"
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    title: Mapped[dict[str, str]] = mapped_column(JSONB)
    description: Mapped[dict[str, str]] = mapped_column(JSONB)
    category: Mapped[str] = mapped_column(Text)
    department: Mapped[str] = mapped_column(Text)
    license_name: Mapped[str] = mapped_column(Text)
    license_url: Mapped[str | None] = mapped_column(Text)
    update_frequency: Mapped[str] = mapped_column(Text)
    is_demo: Mapped[bool] = mapped_column(Boolean, server_default="false")
    keywords: Mapped[list[str]] = mapped_column(JSONB, server_default="[]")
    source_kind: Mapped[str] = mapped_column(Text)
    table_schema: Mapped[str] = mapped_column(Text)
    table_name: Mapped[str] = mapped_column(Text)
    id_column: Mapped[str] = mapped_column(Text)
    geometry_column: Mapped[str] = mapped_column(Text)
    geometry_3857_column: Mapped[str | None] = mapped_column(Text)
    geometry_type: Mapped[str] = mapped_column(Text)
    time_start_field: Mapped[str | None] = mapped_column(Text)
    time_end_field: Mapped[str | None] = mapped_column(Text)
    category_field: Mapped[str | None] = mapped_column(Text)
    opening_hours_field: Mapped[str | None] = mapped_column(Text)
    min_zoom: Mapped[int] = mapped_column(Integer)
    max_zoom: Mapped[int] = mapped_column(Integer)
    group_id: Mapped[str | None] = mapped_column(ForeignKey("groups.id", ondelete="RESTRICT"))  # the owner group
    is_public: Mapped[bool] = mapped_column(Boolean, server_default="true")
    shared_groups: Mapped[list[str]] = mapped_column(JSONB, server_default="[]")  # seen by these groups too
    is_community: Mapped[bool] = mapped_column(Boolean, server_default="false")  # uploaded by a group, not City data
    serves_people: Mapped[bool] = mapped_column(Boolean, server_default="false")  # searched by /nearby by default
    searchable_fields: Mapped[list[str]] = mapped_column(JSONB, server_default="[]")  # public fields /search reads
    require_if_match: Mapped[bool] = mapped_column(Boolean, server_default="false")
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # unpublished, restorable
    extent: Mapped[Any] = mapped_column(Geometry("GEOMETRY", srid=4326), nullable=True)
    temporal_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    temporal_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    feature_count: Mapped[int] = mapped_column(BigInteger, server_default="0")
    version: Mapped[int] = mapped_column(BigInteger, server_default="1")
    manifest: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    __table_args__ = (
        CheckConstraint("source_kind IN ('managed', 'table')", name="layer_source_kind"),
        CheckConstraint("min_zoom BETWEEN 0 AND 24 AND max_zoom BETWEEN min_zoom AND 24", name="layer_zoom"),
        CheckConstraint("is_public OR group_id IS NOT NULL", name="layer_visibility"),
    )


class FieldRow(Base):
    """One column of a layer's table. Only rows with `is_public` ever leave the database."""

    __tablename__ = "layer_fields"
    layer_id: Mapped[str] = mapped_column(ForeignKey("layers.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    data_type: Mapped[str] = mapped_column(Text)
    is_public: Mapped[bool] = mapped_column(Boolean, server_default="false")
    description: Mapped[dict[str, str] | None] = mapped_column(JSONB)


class TokenRow(Base):
    """A bearer token, stored only as its SHA-256 digest; listed and revoked by its prefix.

    A token a group issues (`group_id`) carries its subject's role in that group only."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    token_sha256: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    prefix: Mapped[str | None] = mapped_column(Text, unique=True)
    subject: Mapped[str] = mapped_column(Text)
    is_staff: Mapped[bool] = mapped_column(Boolean, server_default="false")
    group_id: Mapped[str | None] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    open311: Mapped[bool] = mapped_column(Boolean, server_default="false")  # may submit 311 requests
    created_by: Mapped[str | None] = mapped_column(Text)
    label: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditRow(Base):
    """Who did what to which layer, and when."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    layer_id: Mapped[str | None] = mapped_column(Text)
    group_id: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")


class _FeatureEvent:
    """What a version and a change of a feature both record: which feature, which version, which operation, when."""

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    layer_id: Mapped[str] = mapped_column(Text)
    fid: Mapped[str] = mapped_column(Text)  # the feature id as JSON text: 42 or "P1"
    version: Mapped[int] = mapped_column(Integer)
    op: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class HistoryRow(_FeatureEvent, Base):
    """One version of a feature written through the API (its state after the write), private columns included."""

    __tablename__ = "feature_history"
    deleted: Mapped[bool] = mapped_column(Boolean, server_default="false")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB)
    geom: Mapped[Any] = mapped_column(Geometry("GEOMETRY", srid=4326), nullable=True)
    actor: Mapped[str] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(Text)


class ChangeRow(_FeatureEvent, Base):
    """One change of a feature, for the live feed; kept for CHANGES_RETENTION."""

    __tablename__ = "changes"
    bbox: Mapped[list[float] | None] = mapped_column(JSONB)


class Open311RequestRow(Base):
    """A request submitted over Open311: the exact point and what the resident wrote, beside its public row.

    The public part (id, service code, status, times, the point at its published precision) is a row of the
    requests layer; this row is read only at the precision the service code allows (`layers/open311`)."""

    __tablename__ = "open311_requests"
    request_id: Mapped[str] = mapped_column(Text, primary_key=True)
    layer_id: Mapped[str] = mapped_column(Text)
    service_code: Mapped[str] = mapped_column(Text)
    geom: Mapped[Any] = mapped_column(Geometry("POINT", srid=4326))  # exact, for City staff
    address: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    media_url: Mapped[str | None] = mapped_column(Text)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    token: Mapped[str | None] = mapped_column(Text, unique=True)  # for `batch` services: tokens/{token}
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary)  # key, code, place and text: duplicates collapse
    api_key: Mapped[str] = mapped_column(Text)  # the submitting key's prefix: rate limits per key
    client_digest: Mapped[bytes] = mapped_column(LargeBinary)  # SHA-256 of the client address: rate limits
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RequesterRow(Base):
    """Who submitted a request. Never selected by the server: no answer, log or error can carry it."""

    __tablename__ = "open311_requesters"
    request_id: Mapped[str] = mapped_column(
        ForeignKey("open311_requests.request_id", ondelete="CASCADE"), primary_key=True
    )
    email: Mapped[str | None] = mapped_column(Text)
    first_name: Mapped[str | None] = mapped_column(Text)
    last_name: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    device_id: Mapped[str | None] = mapped_column(Text)
    account_id: Mapped[str | None] = mapped_column(Text)


class StatusNoteRow(Base):
    """City staff's last word on any request of the layer: the notes and when the status last changed."""

    __tablename__ = "open311_status"
    request_id: Mapped[str] = mapped_column(Text, primary_key=True)
    status_notes: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_by: Mapped[str] = mapped_column(Text)


def table_of(row: type[Base]) -> sql.Identifier:
    """A model's table, quoted for SQL."""
    return sql.Identifier(CATALOG_SCHEMA, row.__tablename__)


LAYERS_TABLE = table_of(LayerRow)
FIELDS_TABLE = table_of(FieldRow)
GROUPS_TABLE = table_of(GroupRow)
MEMBERSHIPS_TABLE = table_of(MembershipRow)
TOKENS_TABLE = table_of(TokenRow)
AUDIT_TABLE = table_of(AuditRow)
HISTORY_TABLE = table_of(HistoryRow)
CHANGES_TABLE = table_of(ChangeRow)
OPEN311_REQUESTS_TABLE = table_of(Open311RequestRow)
REQUESTERS_TABLE = table_of(RequesterRow)
STATUS_TABLE = table_of(StatusNoteRow)
