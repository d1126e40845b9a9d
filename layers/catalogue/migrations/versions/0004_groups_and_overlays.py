"""Groups, roles and scoped tokens; overlays: public flag, sharing, community marker, unpublishing; near-me and search
flags; audit by group.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from layers.catalogue.models import CATALOG_SCHEMA as SCHEMA

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    for name, kind in (
        ("name_fr", sa.Text),
        ("contact", sa.Text),
        ("max_upload_mb", sa.Integer),
        ("max_features", sa.BigInteger),
        ("max_layers", sa.Integer),
        ("uploads_per_hour", sa.Integer),
    ):
        op.add_column("groups", sa.Column(name, kind), schema=SCHEMA)
    op.add_column("groups", sa.Column("require_if_match", sa.Boolean, server_default="false", nullable=False),
                  schema=SCHEMA)  # fmt: skip
    # Roles: viewer (sees the group's layers), editor (uploads and edits them), publisher (also shares them).
    op.drop_constraint("membership_role", "memberships", schema=SCHEMA)
    op.execute("UPDATE geoserver.memberships SET role = CASE role WHEN 'admin' THEN 'publisher' "
               "WHEN 'editor' THEN 'editor' ELSE 'viewer' END")  # fmt: skip
    op.alter_column("memberships", "role", server_default="viewer", schema=SCHEMA)
    op.create_check_constraint(
        "membership_role", "memberships", "role IN ('viewer', 'editor', 'publisher')", schema=SCHEMA
    )
    # Tokens: listed and revoked by a prefix; a token a group issues is scoped to that group.
    op.add_column("api_tokens", sa.Column("prefix", sa.Text), schema=SCHEMA)
    op.create_index("api_tokens_prefix", "api_tokens", ["prefix"], unique=True, schema=SCHEMA)
    op.add_column(
        "api_tokens",
        sa.Column("group_id", sa.Text, sa.ForeignKey("geoserver.groups.id", ondelete="CASCADE")),
        schema=SCHEMA,
    )
    op.add_column("api_tokens", sa.Column("open311", sa.Boolean, server_default="false", nullable=False),
                  schema=SCHEMA)  # fmt: skip
    op.add_column("api_tokens", sa.Column("created_by", sa.Text), schema=SCHEMA)
    # Layers: public or seen by its owner group and the groups it is shared with.
    op.add_column("layers", sa.Column("is_public", sa.Boolean, server_default="true", nullable=False), schema=SCHEMA)
    op.execute("UPDATE geoserver.layers SET is_public = (group_id IS NULL)")
    flags: list[tuple[str, Any, str]] = [
        ("shared_groups", JSONB, "[]"),
        ("is_community", sa.Boolean, "false"),
        ("serves_people", sa.Boolean, "false"),
        ("searchable_fields", JSONB, "[]"),
        ("require_if_match", sa.Boolean, "false"),
    ]
    for name, kind, default in flags:
        op.add_column("layers", sa.Column(name, kind, server_default=default, nullable=False), schema=SCHEMA)
    op.add_column("layers", sa.Column("deleted_at", sa.DateTime(timezone=True)), schema=SCHEMA)
    op.create_check_constraint("layer_visibility", "layers", "is_public OR group_id IS NOT NULL", schema=SCHEMA)
    op.add_column("audit_log", sa.Column("group_id", sa.Text), schema=SCHEMA)
    op.create_index("audit_log_group_at", "audit_log", ["group_id", "at"], schema=SCHEMA)
    op.create_index("audit_log_actor_at", "audit_log", ["actor", "at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index("audit_log_actor_at", "audit_log", schema=SCHEMA)
    op.drop_index("audit_log_group_at", "audit_log", schema=SCHEMA)
    op.drop_column("audit_log", "group_id", schema=SCHEMA)
    op.drop_constraint("layer_visibility", "layers", schema=SCHEMA)
    for name in ("deleted_at", "require_if_match", "searchable_fields", "serves_people", "is_community",
                 "shared_groups", "is_public"):  # fmt: skip
        op.drop_column("layers", name, schema=SCHEMA)
    for name in ("created_by", "open311", "group_id"):
        op.drop_column("api_tokens", name, schema=SCHEMA)
    op.drop_index("api_tokens_prefix", "api_tokens", schema=SCHEMA)
    op.drop_column("api_tokens", "prefix", schema=SCHEMA)
    op.drop_constraint("membership_role", "memberships", schema=SCHEMA)
    op.execute("UPDATE geoserver.memberships SET role = CASE role WHEN 'publisher' THEN 'admin' "
               "WHEN 'editor' THEN 'editor' ELSE 'member' END")  # fmt: skip
    op.alter_column("memberships", "role", server_default="member", schema=SCHEMA)
    op.create_check_constraint("membership_role", "memberships", "role IN ('member', 'editor', 'admin')", schema=SCHEMA)
    for name in ("require_if_match", "uploads_per_hour", "max_layers", "max_features", "max_upload_mb", "contact",
                 "name_fr"):  # fmt: skip
        op.drop_column("groups", name, schema=SCHEMA)
