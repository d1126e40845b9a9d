"""Settings from the environment (prefix GEOSERVER_), read only when asked for, never at import time."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "password", "please-change-this-secret-value-now"}


class Settings(BaseSettings):
    """Everything an operator can set. Each field maps to GEOSERVER_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="GEOSERVER_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="A PostgreSQL/PostGIS connection URL. When unset, a private cluster runs in data_dir.",
    )
    data_dir: Path = Field(
        default=PROJECT_ROOT / ".data",
        description="Where the embedded cluster, demo files and other state live.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    load_demo: bool = Field(default=True, description="Load the demo City on first start when empty.")
    demo_scale: float = Field(default=1.0, gt=0, le=1000)
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=10, ge=1)
    statement_timeout_ms: int = Field(default=15_000, ge=100)
    connect_timeout_s: float = Field(default=3.0, gt=0, description="Longest wait to open a database connection.")
    pool_timeout_s: float = Field(
        default=10.0, gt=0, description="Longest wait for a free pooled connection before answering 503."
    )
    log_level: str = "info"
    cursor_secret: SecretStr | None = Field(
        default=None,
        description="Signs near-me paging cursors. Set the same value on every machine behind one address; "
        "unset, a key is kept in the data directory.",
    )
    tile_cache_mb: int = Field(default=256, ge=0, description="Memory for built tiles (0 turns the cache off).")
    basemap_style_url: str | None = Field(
        default=None,
        description="A MapLibre style drawn under the City's layers on the web map (absolute or relative URL); "
        "unset, the City's layers are the map. Its origin is allowed by the map's Content-Security-Policy.",
    )
    max_composite_layers: int = Field(default=16, ge=1, le=64, description="Layers one composite tile may hold.")

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("cursor_secret")
    @classmethod
    def _real_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            secret = value.get_secret_value()
            if len(secret) < 32 or secret.lower().strip() in PLACEHOLDER_SECRETS:
                raise ValueError("GEOSERVER_CURSOR_SECRET must be a random value of at least 32 characters")
        return value

    @property
    def embedded(self) -> bool:
        """True when the server runs its own PostgreSQL cluster."""
        return not self.database_url
