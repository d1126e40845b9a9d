"""Open311: requests submitted over GeoReport (exact point, text, token, duplicate fingerprint, rate-limit keys),
their requesters kept apart and never published, and staff's status notes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB

from layers.catalogue.models import CATALOG_SCHEMA as SCHEMA

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "open311_requests",
        sa.Column("request_id", sa.Text, primary_key=True),
        sa.Column("layer_id", sa.Text, nullable=False),
        sa.Column("service_code", sa.Text, nullable=False),
        sa.Column("geom", Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
        sa.Column("address", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("media_url", sa.Text),
        sa.Column("attributes", JSONB, server_default="{}", nullable=False),
        sa.Column("token", sa.Text, unique=True),
        sa.Column("fingerprint", sa.LargeBinary, nullable=False),
        sa.Column("api_key", sa.Text, nullable=False),
        sa.Column("client_digest", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=SCHEMA,
    )
    # Duplicate detection and the two rate limits look back a few minutes to an hour from now.
    for name, column in (("fingerprint", "fingerprint"), ("key", "api_key"), ("client", "client_digest")):
        op.create_index(f"open311_requests_{name}_at", "open311_requests", [column, "created_at"], schema=SCHEMA)
    op.create_table(
        "open311_requesters",
        sa.Column(
            "request_id",
            sa.Text,
            sa.ForeignKey(f"{SCHEMA}.open311_requests.request_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        *(
            sa.Column(name, sa.Text)
            for name in ("email", "first_name", "last_name", "phone", "device_id", "account_id")
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "open311_status",
        sa.Column("request_id", sa.Text, primary_key=True),
        sa.Column("status_notes", sa.Text),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("open311_status", schema=SCHEMA)
    op.drop_table("open311_requesters", schema=SCHEMA)
    op.drop_table("open311_requests", schema=SCHEMA)
