"""Apply the catalogue's Alembic migrations to a database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def sqlalchemy_url(database_url: str) -> str:
    """The same database as a SQLAlchemy URL using the psycopg 3 driver."""
    scheme, sep, rest = database_url.partition("://")
    if not sep or scheme not in {"postgresql", "postgres", "postgresql+psycopg"}:
        raise ValueError("the database URL must start with postgresql://")
    return f"postgresql+psycopg://{rest}"


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the catalogue schema up to `revision`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = create_engine(sqlalchemy_url(database_url), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()
