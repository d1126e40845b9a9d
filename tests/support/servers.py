"""Real servers for real HTTP clients: uvicorn in a thread of the test process, or `geoserver serve` as a process;
and an in-process test client of an app once it is ready."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from geoserver.app import create_app
from geoserver.settings import Settings


def wait_ready(url: str, seconds: float, alive: Callable[[], bool] = lambda: True) -> bool:
    """Poll `url` until it answers 200 (True), the time is up or `alive()` turns false (False)."""
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and alive():
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def stop_process(process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    """SIGTERM, then SIGKILL if it is still there after `seconds`; reaped either way."""
    process.terminate()
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(seconds)


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# A request for /health asking to switch to WebSocket (which no route speaks); the server closes after answering.
WEBSOCKET_UPGRADE = (
    b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
)


class LiveServer:
    """A real uvicorn server on 127.0.0.1, in a thread of the test process, for real HTTP clients."""

    def __init__(self, app: object) -> None:
        import uvicorn

        from geoserver.httpserver import server_options

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,  # type: ignore[arg-type]
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            **server_options(),
        )
        self.server = uvicorn.Server(config)

    def __enter__(self) -> LiveServer:
        import threading

        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        if not wait_ready(f"{self.url}/ready", 30):
            raise AssertionError("the live server did not become ready")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


class ServerProcess:
    """`geoserver serve` as its own process (as deployed), on an existing database, stopped on exit."""

    def __init__(self, database_url: str, data_dir: Path, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "GEOSERVER_DATABASE_URL": database_url,
            "GEOSERVER_DATA_DIR": str(data_dir),
            **{f"GEOSERVER_{name.upper()}": value for name, value in settings.items()},
        }

    def __enter__(self) -> ServerProcess:
        from tests.support.cluster import die_with_parent

        command = [sys.executable, "-m", "geoserver", "serve", "--no-demo", "--port", str(self.port)]
        self.process = subprocess.Popen(  # noqa: S603 - our own CLI
            command, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent
        )
        if not wait_ready(f"{self.url}/ready", 60, alive=lambda: self.process.poll() is None):
            self.__exit__()
            raise AssertionError("the server process did not become ready")
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self.process)


def until_ready(client: TestClient, seconds: float = 30) -> TestClient:
    """The client, once its app answers `/ready` (the catalogue loaded); fails the test after `seconds`."""
    deadline = time.monotonic() + seconds
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, "the app did not load the catalogue"
        time.sleep(0.1)
    return client


@contextlib.contextmanager
def ready_app(database_url: str, data_dir: Path, address: str = "testclient", **settings: Any) -> Iterator[TestClient]:
    """A test client at `address` of an app on the demo City with these settings, once its catalogue is loaded."""
    app = create_app(Settings(data_dir=data_dir, connect_timeout_s=2, **settings), database_url)
    with TestClient(app, client=(address, 40000)) as client:
        yield until_ready(client)
