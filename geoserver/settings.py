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
    pool_min_size: int = Field(default=1, ge=0, description="Connections each pool keeps open when idle.")
    pool_max_size: int | None = Field(
        default=None,
        ge=1,
        description="Connections for map and search requests, per worker; unset: twice the cores this server may "
        "use (its cpuset, within a container's CPU limit), shared among its workers, from 2 to 16.",
    )
    heavy_pool_size: int = Field(
        default=2, ge=1, description="Connections for CQL2 filters, pages over 1,000, 311 stats."
    )
    writes_pool_size: int = Field(
        default=4, ge=1, description="Connections for edits, uploads, groups, tokens, 311 submissions."
    )
    statement_timeout_ms: int = Field(default=15_000, ge=100, description="Longest statement of the City's tools.")
    anonymous_heavy_timeout_ms: int = Field(
        default=5_000, ge=100, description="Longest statement of an anonymous filter or large page (503 above)."
    )
    heavy_per_client: int = Field(default=1, ge=1, description="Heavy requests one client address may run at once.")
    connect_timeout_s: float = Field(default=3.0, gt=0, description="Longest wait to open a database connection.")
    pool_timeout_s: float = Field(
        default=5.0, gt=0, description="Longest wait for a free connection for map and search requests (then 503)."
    )
    heavy_wait_s: float = Field(
        default=2.0, gt=0, description="Longest wait for a free connection for heavy work or writes (then 503)."
    )
    download_builds: int = Field(
        default=1, ge=1, description="Download files built at once, each in a low-priority process (more wait)."
    )
    download_build_timeout_s: float = Field(default=900.0, gt=0, description="Longest build of one download file.")
    send_timeout_s: float = Field(
        default=30.0, gt=0, description="A client that reads nothing of an answer for this long is disconnected."
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
    # What a community group may upload, unless City staff set other quotas on the group.
    upload_max_mb: int = Field(default=50, ge=1, le=10_000, description="Largest upload, in megabytes (413 above).")
    group_max_features: int = Field(default=100_000, ge=1, description="Features in one overlay at the most.")
    group_max_layers: int = Field(default=20, ge=1, description="Overlays one group may have at the most.")
    group_uploads_per_hour: int = Field(default=30, ge=1, description="Uploads per group per hour (429 above).")
    # Open311 GeoReport v2.
    open311_services: Path | None = Field(
        default=None, description="The 311 service catalogue manifest (default: the bundled demo catalogue)."
    )
    open311_per_key_per_hour: int = Field(default=120, ge=1, description="Requests one api_key may submit per hour.")
    open311_per_address_per_hour: int = Field(
        default=30, ge=1, description="Requests one client address may submit per hour, whatever the key."
    )

    read_database_urls: str = Field(
        default="",
        description="Comma-separated URLs of streaming replicas: anonymous map reads go there once they have "
        "replayed the changes those reads depend on.",
    )
    replica_max_lag_s: float = Field(default=10.0, gt=0, description="A replica this far behind leaves the rotation.")
    cache_purge_urls: str = Field(
        default="", description="Comma-separated URLs of caching proxies or CDN purge endpoints, told of changes."
    )
    cache_purge_method: str = Field(default="PURGE", description="HTTP method of purge requests (Fastly: POST).")
    cache_purge_header: str = Field(default="", description="One extra `Name: value` header for purge requests.")
    shared_max_age_s: int = Field(
        default=60, ge=0, description="s-maxage of public answers: how long shared caches may keep them."
    )
    rate_limit: str = Field(
        default="100/second;3000/minute",
        description="Requests per client address, as `N/second;M/minute` (empty: no limit). 429 above.",
    )
    rate_limit_loopback: bool = Field(
        default=False, description="Limit clients on 127.0.0.1/::1 too (off: local tools and tests are not limited)."
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses or CIDR ranges of reverse proxies whose X-Forwarded-For is believed.",
    )

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
