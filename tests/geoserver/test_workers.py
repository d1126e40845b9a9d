"""Several workers on one port: each listens on a socket of its own, so a burst of new connections reaches all of
them (with one shared socket, the first worker to wake took most of a burst); a worker holding more than its share of
the open connections lets some go until the shares are even; a busy port fails with its address.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from geoserver import balance
from tests.support.cluster import make_shared_dir
from tests.support.servers import ServerProcess, free_port

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


def _server_sockets(port: int, state: str) -> dict[str, int]:
    """Inode -> remote (client) port of the TCP sockets whose local port is `port`, in `state` (01 established,
    0A listening)."""
    found = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
            found[fields[9]] = int(fields[2].rsplit(":", 1)[1], 16)
    return found


def _until_listening(port: int, sockets: int) -> None:
    """A worker listens only once its app has started, which may be after another worker answered `/ready`."""
    deadline = time.monotonic() + 30
    while len(_server_sockets(port, "0A")) < sockets:
        assert time.monotonic() < deadline, "the workers did not all listen"
        time.sleep(0.1)


def _worker_of(server_pid: int, port: int) -> dict[int, int]:
    """Client port -> pid of the worker holding that connection, for the connections the workers have accepted."""
    clients, held = _server_sockets(port, "01"), {}
    for worker in _children(server_pid):
        for fd in Path(f"/proc/{worker}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in clients:
                held[clients[target[8:-1]]] = worker
    return held


def _until_accepted(server_pid: int, port: int, client_ports: list[int]) -> dict[int, int]:
    deadline = time.monotonic() + 30
    while True:
        held = _worker_of(server_pid, port)
        if all(p in held for p in client_ports):
            return held
        assert time.monotonic() < deadline, "the workers did not accept every connection"
        time.sleep(0.05)


def test_a_burst_of_connections_reaches_every_worker(database_url: str) -> None:
    with ServerProcess(database_url, make_shared_dir("geoserver-workers-"), workers="2") as server:
        _until_listening(server.port, 2)
        clients = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(CONNECTIONS)]
        try:
            held = _until_accepted(server.process.pid, server.port, [c.getsockname()[1] for c in clients])
            for client in clients:
                client.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            for client in clients:
                assert client.recv(64).startswith(b"HTTP/1.1 200")  # every connection was accepted and answered
        finally:
            for client in clients:
                client.close()
    counts = Counter(held[c] for c in held)
    assert sum(counts.values()) >= CONNECTIONS
    # Spread by a hash of the addresses: all 16 on one worker has odds of 1 in 32,768 (with one shared socket, the
    # first worker to wake took all 16, three times in three).
    assert len(counts) == 2, counts


def _uneven_connections(server_pid: int, port: int) -> list[http.client.HTTPConnection]:
    """16 open connections, 12 of them on one worker and 4 on the other."""
    opened: list[http.client.HTTPConnection] = []
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.connect()
        opened.append(conn)
        held = _until_accepted(server_pid, port, [c.sock.getsockname()[1] for c in opened])
        by_worker: dict[int, list[http.client.HTTPConnection]] = {}
        for c in opened:
            by_worker.setdefault(held[c.sock.getsockname()[1]], []).append(c)
        groups = sorted(by_worker.values(), key=len, reverse=True)
        if len(groups) == 2 and len(groups[0]) >= 12 and len(groups[1]) >= 4:
            keep = groups[0][:12] + groups[1][:4]
            for c in opened:
                if c not in keep:
                    c.close()
            return keep
        assert len(opened) < 200, "the kernel put every connection on one worker"


def test_uneven_connections_are_evened_out(database_url: str) -> None:
    with ServerProcess(database_url, make_shared_dir("geoserver-workers-even-"), workers="2") as server:
        _until_listening(server.port, 2)
        pid = server.process.pid
        connections = _uneven_connections(pid, server.port)
        let_go = 0
        try:
            for _ in range(400):  # each round: one request on every connection, reopened when the server closed it
                for conn in connections:
                    conn.request("GET", "/health")
                    response = conn.getresponse()
                    assert response.status == 200
                    response.read()
                    let_go += response.getheader("connection", "") == "close"
                for conn in connections:
                    if conn.sock is None:
                        conn.connect()
                held = _until_accepted(pid, server.port, [c.sock.getsockname()[1] for c in connections])
                counts = Counter(held[c.sock.getsockname()[1]] for c in connections)
                if sorted(counts.values()) == [8, 8]:
                    break
        finally:
            for conn in connections:
                conn.close()
    assert sorted(counts.values()) == [8, 8], counts
    assert let_go >= 4  # at least the four the busier worker held beyond its share


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


def test_a_worker_lets_go_of_its_excess_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(balance.time, "monotonic", lambda: clock[0])
    shares = balance.ConnectionShares(2)
    assert shares.join()
    for _ in range(12):
        shares.opened()
    assert not shares.should_let_go()  # alone in the table: nothing to even out
    other = os.getppid()  # a live process standing in for the second worker, holding 4 connections
    shares._table[2], shares._table[3] = other, 4  # noqa: SLF001 - the slot a second worker would have taken
    let_go = 0
    for _ in range(20):
        if shares.should_let_go():
            let_go += 1
        assert not shares.should_let_go()  # at most one per LET_GO_EVERY_S
        clock[0] += balance.LET_GO_EVERY_S
    assert let_go == 4  # 12 - 4 let go leaves 8, the share of 16 over two workers
    shares.closed(told_to=True)
    shares.closed(told_to=False)
    assert not shares.should_let_go()  # 10 open, 3 of them still closing: 7 kept, under the share of 14
