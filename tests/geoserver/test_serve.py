"""`geoserver serve` end to end: first start, the CLI beside it, clean stops, reuse, recovery after a crash."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from geoserver.cluster import EmbeddedCluster
from tests.support.cluster import die_with_parent, make_shared_dir
from tests.support.servers import free_port

DEMO_LAYERS = {
    "wards": "boundaries",
    "communities": "boundaries",
    "facilities": "facilities",
    "roads": "infrastructure",
    "water_mains": "infrastructure",
    "streetlights": "infrastructure",
    "parcels": "property",
    "events": "events",
    "service_requests": "service_requests",
}


class Server:
    """One `geoserver serve` process on a data directory of its own."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        self.env = {**os.environ, "GEOSERVER_DATA_DIR": str(data_dir), "GEOSERVER_PORT": str(port)}
        self.env.pop("GEOSERVER_DATABASE_URL", None)
        self.process: subprocess.Popen[str] | None = None
        self.output = ""

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "geoserver", "serve"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=die_with_parent,
        )

    def status(self, path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    def wait_ready(self, timeout_s: float = 120) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited early:\n{self.process.communicate()[0]}")
            if self.status("/ready") == 200:
                return
            time.sleep(0.2)
        raise AssertionError("the server did not become ready")

    def stop(self, sig: int) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        self.output, _ = self.process.communicate(timeout=60)
        return self.process.returncode

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "geoserver", *args], env=self.env, capture_output=True, text=True, timeout=120
        )


@pytest.fixture
def server() -> Iterator[Server]:
    root = make_shared_dir("geoserver-serve-")
    srv = Server(root / "data", free_port())
    try:
        yield srv
    finally:
        if srv.process is not None and srv.process.poll() is None:
            srv.process.kill()
            srv.process.communicate()
        EmbeddedCluster(root / "data").stop()
        shutil.rmtree(root, ignore_errors=True)


def test_serve_loads_the_demo_city_and_stops_cleanly(server: Server) -> None:
    server.start()
    server.wait_ready()
    assert server.status("/health") == 200

    listed = server.cli("layers", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    layers = {row["id"]: row for row in json.loads(listed.stdout)}
    assert {k: v["category"] for k, v in layers.items()} == DEMO_LAYERS
    assert all(row["demo"] and "demo" in row["title"].lower() for row in layers.values())
    assert server.cli("cluster", "status").returncode == 0  # the CLI found the server's cluster and left it running

    assert server.stop(signal.SIGTERM) == 0
    assert "Stopping the embedded PostgreSQL cluster" in server.output
    assert server.cli("cluster", "status").returncode == 3

    # A second run reuses the cluster's data and the demo files: nothing is generated or loaded again. A resident
    # reports a pothole meanwhile.
    server.start()
    server.wait_ready()
    request_id = _report_a_pothole(server)
    assert server.stop(signal.SIGINT) == 0
    assert "Generating the demo City" not in server.output and "Loading the demo City" not in server.output
    assert server.cli("cluster", "status").returncode == 3

    # A demo City generated on an earlier day has stale events ("now" has moved on): the next start renews it, but
    # not the layer the resident's report went into.
    stamp = server.data_dir / "demo" / "generated.json"
    stamp.write_text(json.dumps({**json.loads(stamp.read_text()), "day": "2000-01-01"}))
    server.start()
    server.wait_ready()
    assert server.status(f"/open311/v2/requests/{request_id}.json") == 200
    assert server.stop(signal.SIGTERM) == 0
    assert "refreshing it" in server.output and "Generating the demo City" in server.output
    said = " ".join(server.output.split())
    assert "service_requests: kept as it is (1 feature(s) written through the API since its last load)" in said


def _report_a_pothole(server: Server) -> str:
    """A 311 report through GeoReport v2, as a resident's app sends it; its request id."""
    key = server.cli("tokens", "create", "app@serve", "--open311").stdout.strip().splitlines()[-1]
    form = {"api_key": key, "service_code": "POTHOLE", "attribute[SIZE]": "small", "lat": "51.045", "long": "-114.06"}
    sent = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/open311/v2/requests.json", data=urllib.parse.urlencode(form).encode()
    )
    with urllib.request.urlopen(sent, timeout=10) as answer:
        return str(json.loads(answer.read())[0]["service_request_id"])


def test_serve_recovers_after_a_crash(server: Server) -> None:
    server.start()
    server.wait_ready()
    assert server.process is not None
    cluster = EmbeddedCluster(server.data_dir)
    postmaster = int((cluster.pgdata / "postmaster.pid").read_text().splitlines()[0])
    server.process.kill()  # the server dies without cleaning up...
    server.process.communicate()
    os.kill(postmaster, signal.SIGKILL)  # ...and so does PostgreSQL
    server.start()
    server.wait_ready()
    listed = server.cli("layers", "list", "--json")
    assert {row["id"] for row in json.loads(listed.stdout)} == set(DEMO_LAYERS)
    assert server.stop(signal.SIGTERM) == 0


def test_cli_commands_start_and_stop_the_cluster_they_need(server: Server) -> None:
    assert server.cli("migrate").returncode == 0
    listed = server.cli("layers", "list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
    assert server.cli("cluster", "status").returncode == 3  # started for the command, stopped after it
    shown = server.cli("layers", "show", "no-such-layer")
    assert shown.returncode == 1 and "no layer named 'no-such-layer'" in shown.stderr
    removed = server.cli("layers", "remove", "no-such-layer")
    assert removed.returncode == 1 and "no layer named 'no-such-layer'" in removed.stderr
    assert "Traceback" not in shown.stderr


def test_with_a_database_url_no_cluster_is_started(server: Server, database_url: str) -> None:
    server.env.update(GEOSERVER_DATABASE_URL=database_url, GEOSERVER_LOAD_DEMO="false")
    server.start()
    server.wait_ready()
    assert not (server.data_dir / "pg").exists()
    assert server.stop(signal.SIGTERM) == 0
    assert "embedded PostgreSQL" not in server.output
