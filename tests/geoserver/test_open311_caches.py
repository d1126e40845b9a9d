"""GeoReport answers and shared caches: public answers about requests name the requests layer in `Surrogate-Key`, and
a submission purges that key before it answers, so a caching proxy never serves a list without the new request."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.access import issue
from tests.support.open311 import POTHOLE, form, place, remove_submitted
from tests.support.servers import ready_app
from tests.support.uploads import bearer

LAYER_KEYS = {"items/service_requests", "layer/service_requests"}


@pytest.fixture(scope="module")
def purges() -> Iterator[tuple[str, list[str]]]:
    """A caching proxy's purge endpoint that only remembers the keys it was asked to purge: its URL, the keys."""
    keys: list[str] = []

    class Purges(http.server.BaseHTTPRequestHandler):
        def do_PURGE(self) -> None:  # noqa: N802 - the method name is the HTTP method's
            keys.extend(self.headers.get("Surrogate-Key", "").split())
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's signature
            """Quiet: the test reads the keys, not a log."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Purges)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", keys
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture(scope="module")
def app(
    database_url: str, demo_city: dict[str, str], app_data_dir: Path, purges: tuple[str, list[str]]
) -> Iterator[TestClient]:
    """An app on the demo City that sends its purges to the endpoint above."""
    with ready_app(database_url, app_data_dir, cache_purge_urls=purges[0], shared_max_age_s=3600) as client:
        yield client
    remove_submitted(database_url)


def test_public_request_answers_name_the_requests_layer_and_staff_ones_are_never_shared(
    app: TestClient, database_url: str
) -> None:
    for path in ("/open311/v2/requests.json", "/open311/v2/requests.xml", "/open311/v2/stats?by=ward"):
        public = app.get(path)
        assert public.status_code == 200, (path, public.text)
        assert "s-maxage=3600" in public.headers["cache-control"], path
        assert LAYER_KEYS <= set(public.headers["surrogate-key"].split()), path
    staff = app.get("/open311/v2/requests.json", headers=bearer(issue(database_url, "cache-staff", staff=True)))
    assert staff.headers["cache-control"] == "private, no-store" and "surrogate-key" not in staff.headers


def test_a_submission_purges_the_requests_layer_before_it_answers(
    app: TestClient, database_url: str, purges: tuple[str, list[str]]
) -> None:
    keys = purges[1]
    keys.clear()
    created = app.post(
        "/open311/v2/requests.json",
        data=form(issue(database_url, "cache-app", open311=True), place(database_url, 140), POTHOLE),
    )
    assert created.status_code == 200, created.text
    assert "items/service_requests" in keys, keys
