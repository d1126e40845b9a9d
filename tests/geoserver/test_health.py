"""Liveness and readiness, with the database up, down at start, and lost then back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from geoserver.app import create_app
from geoserver.cluster import EmbeddedCluster
from geoserver.settings import Settings
from tests.support.cluster import running_cluster
from tests.support.servers import free_port


def _settings(tmp: Path) -> Settings:
    return Settings(data_dir=tmp, connect_timeout_s=1, pool_min_size=1, pool_max_size=4)


def _until(check: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_ready_when_the_database_answers(database_url: str, tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path), database_url)) as client:
        assert client.get("/health").json() == {"status": "ok"}
        _until(lambda: client.get("/ready").status_code == 200)
        body = client.get("/ready").json()
        assert body["status"] == "ready" and isinstance(body["layers"], int)


def test_the_server_starts_with_the_database_down(tmp_path: Path) -> None:
    url = f"postgresql://geoserver@127.0.0.1:{free_port()}/geoserver"
    with TestClient(create_app(_settings(tmp_path), url)) as client:
        assert client.get("/health").status_code == 200
        response = client.get("/ready")
        assert response.status_code == 503
        assert response.headers["retry-after"]
        assert response.json()["code"] == "database_unavailable"
        assert "Traceback" not in response.text and "postgresql://" not in response.text


@pytest.fixture
def own_cluster() -> Iterator[EmbeddedCluster]:
    """A cluster this test may stop and start."""
    with running_cluster("geoserver-ready-") as cluster:
        yield cluster


def test_ready_recovers_by_itself_when_the_database_comes_back(own_cluster: EmbeddedCluster, tmp_path: Path) -> None:
    from layers.catalogue.migrate import upgrade

    url = own_cluster.url()
    upgrade(url)
    with TestClient(create_app(_settings(tmp_path), url)) as client:
        _until(lambda: client.get("/ready").status_code == 200)
        own_cluster.stop()
        assert client.get("/ready").status_code == 503
        assert client.get("/health").status_code == 200
        assert own_cluster.ensure_started() == url  # same port: the server's URL is still right
        _until(lambda: client.get("/ready").status_code == 200)


def test_unknown_paths_get_a_json_404(database_url: str, tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path), database_url)) as client:
        response = client.get("/no/such/thing")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"


def test_an_unexpected_error_is_a_json_500_with_cors_and_no_trace(database_url: str, tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path), database_url)

    async def boom() -> None:
        raise RuntimeError("secret internal detail /etc/passwd")

    app.add_api_route("/boom", boom)
    with TestClient(app) as client:
        response = client.get("/boom", headers={"Origin": "https://example.org"})
        assert response.status_code == 500
        assert response.json() == {
            "code": "internal_error",
            "description": "an unexpected error occurred; it has been logged",
        }
        assert response.headers["access-control-allow-origin"] == "*"
        assert "secret" not in response.text and "Traceback" not in response.text
        assert client.get("/health").status_code == 200  # still serving
