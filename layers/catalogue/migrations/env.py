"""Alembic environment: runs on the connection handed over by `layers.catalogue.migrate`."""

from __future__ import annotations

from alembic import context

from layers.catalogue.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # In the default schema: it must exist before the first migration creates ours.
    version_table="geoserver_alembic_version",
    include_schemas=True,
)
with context.begin_transaction():
    context.run_migrations()
