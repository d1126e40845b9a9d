"""Near-me callers' coordinates never reach a log line: root, uvicorn.error and uvicorn.access, on a real server."""

from __future__ import annotations

import logging
import logging.config
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from geoserver.logs import REDACTED, RedactQueryStrings, strip_query, uvicorn_log_config
from tests.support.servers import free_port

# Coordinates with digit runs that appear nowhere else in the server's output.
LON, LAT = "-114.0712345", "51.0498765"
DIGITS = ("0712345", "0498765")
REQUESTS = [
    f"/nearby?lon={LON}&lat={LAT}&layers=facilities&limit=3",
    f"/nearby?lat={LAT}&lon={LON}&radius=750.5&open_now=true",
    f"/nearby?lon={LON}&lat={LAT}&radius=-1",  # a 400
    f"/nearby?lon={LON}&lat={LAT}&cursor=forged",  # a 400
    f"/here?lon={LON}&lat={LAT}",
    f"/collections/facilities/items?near={LON},{LAT}&radius=500",  # another module's near=, or a 404
    f"/no/such/path?lon={LON}&lat={LAT}",  # a 404
]

SERVER_SCRIPT = """
import logging, sys
import uvicorn
from uvicorn.config import LOGGING_CONFIG
from geoserver.app import create_app
from geoserver.httpserver import server_options
from geoserver.logs import uvicorn_log_config
from geoserver.settings import Settings

url, port, redact = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "redact"
logging.getLogger().setLevel(logging.DEBUG)  # every logger of every library, at its most talkative
config = uvicorn.Config(
    create_app(Settings(), url), host="127.0.0.1", port=port, log_level="debug",
    log_config=uvicorn_log_config() if redact else LOGGING_CONFIG, **server_options(),
)
if not redact:  # uvicorn's default leaves the root logger alone: give it a handler so nothing hides
    logging.getLogger().addHandler(logging.StreamHandler(sys.stderr))
uvicorn.Server(config).run()
"""


def _serve_and_capture(command: list[str], port: int, env: dict[str, str], out: Path) -> str:
    """Start a server, send every request once it is ready, stop it, and return all it wrote."""
    with open(out, "w") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as response:
                        if response.status == 200:
                            break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the server did not become ready:\n{out.read_text()}")
                time.sleep(0.2)
            statuses = []
            for path in REQUESTS:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
                        statuses.append(response.status)
                except urllib.error.HTTPError as refused:
                    statuses.append(refused.code)
            assert statuses[0] == 200 and statuses[2] == 400 and statuses[4] == 200, statuses
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return out.read_text()


def _env(database_url: str, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "GEOSERVER_DATABASE_URL": database_url,
        "GEOSERVER_PORT": str(port),
        "GEOSERVER_LOAD_DEMO": "false",
        "GEOSERVER_LOG_LEVEL": "debug",
    }


@pytest.mark.usefixtures("demo_city")
def test_geoserver_serve_writes_access_lines_without_coordinates(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "geoserver", "serve"]
    captured = _serve_and_capture(command, port, _env(database_url, port), tmp_path / "serve.log")
    access = [line for line in captured.splitlines() if '"GET /' in line]
    assert len(access) >= len(REQUESTS), captured  # the access log is on, one line per request
    assert any(f'"GET /nearby{REDACTED} HTTP/1.1" 200' in line for line in access)
    assert any(f'"GET /here{REDACTED} HTTP/1.1" 200' in line for line in access)
    for digits in DIGITS:
        assert digits not in captured


@pytest.mark.usefixtures("demo_city")
@pytest.mark.parametrize("redact", [True, False], ids=["our config", "uvicorn default (control)"])
def test_no_log_line_of_any_logger_holds_a_coordinate(database_url: str, tmp_path: Path, redact: bool) -> None:
    port = free_port()
    command = [sys.executable, "-c", SERVER_SCRIPT, database_url, str(port), "redact" if redact else "plain"]
    captured = _serve_and_capture(command, port, _env(database_url, port), tmp_path / "server.log")
    assert "geoserver.state" in captured or "catalogue loaded" in captured  # root-logger records are captured
    assert "uvicorn" in captured.lower() or "Started server process" in captured  # uvicorn.error too
    assert '"GET /nearby' in captured  # and the access log
    leaked = [d for d in DIGITS if d in captured]
    if redact:
        assert leaked == [], [line for line in captured.splitlines() if any(d in line for d in DIGITS)]
    else:
        assert leaked == list(DIGITS)  # the control: without the filter the coordinates are there to be found


def _access_record(path: str) -> logging.LogRecord:
    return logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", path, "1.1", 200), None,
    )  # fmt: skip


def test_the_filter_drops_the_query_string_of_every_access_line() -> None:
    record = _access_record(f"/nearby?lon={LON}&lat={LAT}")
    assert RedactQueryStrings().filter(record)
    assert record.getMessage() == f'127.0.0.1:5000 - "GET /nearby{REDACTED} HTTP/1.1" 200'
    plain = _access_record("/health")
    RedactQueryStrings().filter(plain)
    assert plain.getMessage() == '127.0.0.1:5000 - "GET /health HTTP/1.1" 200'
    assert strip_query(f"/tiles/a/1/2/3.pbf?near={LON}") == f"/tiles/a/1/2/3.pbf{REDACTED}"


def test_the_filter_redacts_urls_in_any_other_record() -> None:
    record = logging.LogRecord("geoserver.x", logging.WARNING, __file__, 1, "slow: %s", (f"/here?lat={LAT}",), None)
    RedactQueryStrings().filter(record)
    assert record.getMessage() == f"slow: /here{REDACTED}" and LAT not in record.getMessage()
    untouched = logging.LogRecord("geoserver.x", logging.INFO, __file__, 1, "why? %d layers", (3,), None)
    RedactQueryStrings().filter(untouched)
    assert untouched.getMessage() == "why? 3 layers"


def test_the_config_filters_every_handler_and_the_access_logger() -> None:
    config = uvicorn_log_config()
    assert config["loggers"]["uvicorn.access"]["filters"] == ["redact_query"]
    assert config["loggers"]["uvicorn.access"]["propagate"] is False  # why the root alone would not do
    assert all("redact_query" in handler["filters"] for handler in config["handlers"].values())
    assert config["root"]["handlers"] and "level" not in config["root"]
    assert uvicorn_log_config() == config and config is not uvicorn_log_config()  # a fresh copy each time
