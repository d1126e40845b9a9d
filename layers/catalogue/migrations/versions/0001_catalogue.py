"""The catalogue: layers, fields, groups, memberships, API tokens, audit log."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB

from layers.catalogue.models import CATALOG_SCHEMA as SCHEMA

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute("CREATE SCHEMA IF NOT EXISTS geoserver")
    op.execute("CREATE SCHEMA IF NOT EXISTS layer_data")
    op.create_table(
        "groups",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "memberships",
        sa.Column("group_id", sa.Text, sa.ForeignKey("geoserver.groups.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("subject", sa.Text, primary_key=True),
        sa.Column("role", sa.Text, server_default="member", nullable=False),
        sa.CheckConstraint("role IN ('member', 'editor', 'admin')", name="membership_role"),
        schema=SCHEMA,
    )
    op.create_table(
        "layers",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("title", JSONB, nullable=False),
        sa.Column("description", JSONB, nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("department", sa.Text, nullable=False),
        sa.Column("license_name", sa.Text, nullable=False),
        sa.Column("license_url", sa.Text),
        sa.Column("update_frequency", sa.Text, nullable=False),
        sa.Column("is_demo", sa.Boolean, server_default="false", nullable=False),
        sa.Column("keywords", JSONB, server_default="[]", nullable=False),
        sa.Column("source_kind", sa.Text, nullable=False),
        sa.Column("table_schema", sa.Text, nullable=False),
        sa.Column("table_name", sa.Text, nullable=False),
        sa.Column("id_column", sa.Text, nullable=False),
        sa.Column("geometry_column", sa.Text, nullable=False),
        sa.Column("geometry_3857_column", sa.Text),
        sa.Column("geometry_type", sa.Text, nullable=False),
        sa.Column("time_start_field", sa.Text),
        sa.Column("time_end_field", sa.Text),
        sa.Column("category_field", sa.Text),
        sa.Column("opening_hours_field", sa.Text),
        sa.Column("min_zoom", sa.Integer, nullable=False),
        sa.Column("max_zoom", sa.Integer, nullable=False),
        sa.Column("group_id", sa.Text, sa.ForeignKey("geoserver.groups.id", ondelete="RESTRICT")),
        sa.Column("extent", Geometry("GEOMETRY", srid=4326, spatial_index=False)),
        sa.Column("temporal_start", sa.DateTime(timezone=True)),
        sa.Column("temporal_end", sa.DateTime(timezone=True)),
        sa.Column("feature_count", sa.BigInteger, server_default="0", nullable=False),
        sa.Column("version", sa.BigInteger, server_default="1", nullable=False),
        sa.Column("manifest", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("source_kind IN ('managed', 'table')", name="layer_source_kind"),
        sa.CheckConstraint("min_zoom BETWEEN 0 AND 24 AND max_zoom BETWEEN min_zoom AND 24", name="layer_zoom"),
        schema=SCHEMA,
    )
    op.create_table(
        "layer_fields",
        sa.Column("layer_id", sa.Text, sa.ForeignKey("geoserver.layers.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("data_type", sa.Text, nullable=False),
        sa.Column("is_public", sa.Boolean, server_default="false", nullable=False),
        sa.Column("description", JSONB),
        schema=SCHEMA,
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("token_sha256", sa.LargeBinary, nullable=False, unique=True),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("is_staff", sa.Boolean, server_default="false", nullable=False),
        sa.Column("label", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        schema=SCHEMA,
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("layer_id", sa.Text),
        sa.Column("detail", JSONB, server_default="{}", nullable=False),
        schema=SCHEMA,
    )
    op.create_index("audit_log_layer_at", "audit_log", ["layer_id", "at"], schema=SCHEMA)


def downgrade() -> None:
    for table in ("audit_log", "api_tokens", "layer_fields", "layers", "memberships", "groups"):
        op.drop_table(table, schema=SCHEMA)
