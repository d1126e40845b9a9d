"""Edits keep every version: the history of features written through the API, and the feed of changes."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB

from layers.catalogue.models import CATALOG_SCHEMA as SCHEMA

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "feature_history",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("layer_id", sa.Text, nullable=False),
        sa.Column("fid", sa.Text, nullable=False),  # the feature id as JSON text: 42 or "P1"
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("op", sa.Text, nullable=False),
        sa.Column("deleted", sa.Boolean, server_default="false", nullable=False),
        sa.Column("attributes", JSONB, nullable=False),  # every column, private ones too: they never leave
        sa.Column("geom", Geometry("GEOMETRY", srid=4326, spatial_index=False)),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("request_id", sa.Text),
        sa.UniqueConstraint("layer_id", "fid", "version", name="feature_history_version"),
        schema=SCHEMA,
    )
    op.create_index("feature_history_layer_at", "feature_history", ["layer_id", "at"], schema=SCHEMA)
    op.create_table(
        "changes",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("layer_id", sa.Text, nullable=False),
        sa.Column("fid", sa.Text, nullable=False),
        sa.Column("op", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("bbox", JSONB),  # [xmin, ymin, xmax, ymax] of the feature before and after
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=SCHEMA,
    )
    op.create_index("changes_layer_id", "changes", ["layer_id", "id"], schema=SCHEMA)
    op.create_index("changes_at", "changes", ["at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("changes", schema=SCHEMA)
    op.drop_table("feature_history", schema=SCHEMA)
