"""Several workers on one port: each listens on a socket of its own, so a burst of new connections reaches all of
them (with one shared socket, the first worker to wake took most of a burst); a busy port fails with its address.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.support.cluster import make_shared_dir
from tests.support.servers import WEBSOCKET_UPGRADE, ServerProcess, free_port

CONNECTIONS = 16


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if f"\nPPid:\t{pid}\n" in status:
                found.append(int(entry.name))
    return found


def _inodes(port: int, state: str) -> set[str]:
    """Socket inodes of TCP sockets whose local port is `port`, in `state` (01 established, 0A listening)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
            inodes.add(fields[9])
    return inodes


def _until_listening(port: int, sockets: int) -> None:
    """A worker listens only once its app has started, which may be after another worker answered `/ready`."""
    deadline = time.monotonic() + 30
    while len(_inodes(port, "0A")) < sockets:
        assert time.monotonic() < deadline, "the workers did not all listen"
        time.sleep(0.1)


def _connections_per_worker(server_pid: int, port: int) -> Counter[int]:
    inodes, counts = _inodes(port, "01"), Counter[int]()
    for worker in _children(server_pid):
        for fd in Path(f"/proc/{worker}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                counts[worker] += 1
    return counts


def test_a_burst_of_connections_reaches_every_worker(database_url: str) -> None:
    with ServerProcess(database_url, make_shared_dir("geoserver-workers-"), workers="2") as server:
        _until_listening(server.port, 2)
        clients = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(CONNECTIONS)]
        try:
            for client in clients:
                client.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            for client in clients:
                assert client.recv(64).startswith(b"HTTP/1.1 200")  # every connection was accepted and answered
            counts = _connections_per_worker(server.process.pid, server.port)
        finally:
            for client in clients:
                client.close()
    assert sum(counts.values()) == CONNECTIONS
    # Spread by a hash of the addresses: all 16 on one worker has odds of 1 in 32,768 (with one shared socket, the
    # first worker to wake took all 16, three times in three).
    assert len(counts) == 2, counts


def test_serve_answers_a_websocket_upgrade_as_plain_http(database_url: str) -> None:
    with ServerProcess(database_url, make_shared_dir("geoserver-workers-ws-"), workers="2") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
            client.sendall(WEBSOCKET_UPGRADE)
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b'{"status":"ok"}'), answer


def test_a_busy_port_fails_naming_the_address(database_url: str) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        env = {**os.environ, "GEOSERVER_DATABASE_URL": database_url, "GEOSERVER_WORKERS": "2",
               "GEOSERVER_DATA_DIR": str(make_shared_dir("geoserver-workers-busy-"))}  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "geoserver", "serve", "--no-demo", "--port", str(port)],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in done.stdout + done.stderr
