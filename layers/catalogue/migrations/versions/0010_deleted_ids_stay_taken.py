"""A feature's id stays taken once it is deleted: its versions are in history, and it can be restored.

A layer whose features the server numbers gave a new feature the largest id in the table plus one, so after the
newest feature was deleted the next one took its id: its first version then clashed with the deleted feature's
history (a 500), and the deleted feature could no longer be restored as itself. New ids now follow the largest id
in the table and among the layer's deleted features; this partial index finds those without reading the rest of
the layer's history.
"""

from __future__ import annotations

from alembic import op

from layers.catalogue.models import CATALOG_SCHEMA as SCHEMA

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.create_index(
        "feature_history_deleted",
        "feature_history",
        ["layer_id"],
        schema=SCHEMA,
        postgresql_where="deleted",
    )


def downgrade() -> None:
    op.drop_index("feature_history_deleted", "feature_history", schema=SCHEMA)
