"""Several worker processes on one port, each listening on a socket of its own, so connections spread evenly.

uvicorn's workers share one listening socket, and a burst of new connections goes to whichever worker wakes first:
it accepts them all. With connections that stay open (a proxy's pool to its upstream, a benchmark's clients), one
worker then serves most of them while the other waits: measured with 16 connections on 2 workers, splits of 16/0,
14/2 and 13/3 were common. Here each worker binds its own socket with SO_REUSEPORT, and the kernel hands each new
connection to one of them by a hash of its addresses.

The supervisor stays uvicorn's (restarts, signals, health checks). What it hands each worker is not a socket but
`SocketInWorker`, which becomes one when the worker unpickles it: the supervisor holds none, and a worker that dies
takes its socket with it (new connections then go to the others; the few waiting in its queue at that moment are
reset, and their clients retry) until the supervisor has started another. Before the workers start, the port is
checked the usual way (a socket without SO_REUSEPORT): a second `geoserver serve` on a busy port fails with its
address. The check is made at start only: another program of the same user that binds the port with SO_REUSEPORT
in the moment before the workers do would share it.
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import Any, cast

from uvicorn import Config
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess

from layers.errors import GeoServerError

log = logging.getLogger("geoserver.workers")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def bind_reusing_port(host: str, port: int) -> socket.socket:
    """A socket bound to host:port that other workers of this server may bind too (SO_REUSEPORT).

    Bound, not yet listening: the kernel sends it connections only once uvicorn listens on it, after the app's
    startup, so none wait on a worker that cannot answer yet. A worker that cannot bind exits as a failed start,
    which stops the supervisor instead of starting it again and again."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        log.error("a worker cannot listen on %s:%d: %s", host, port, exc.strerror)
        sys.exit(STARTUP_FAILURE)
    sock.set_inheritable(True)
    return sock


class SocketInWorker:
    """What the supervisor hands each worker instead of a socket: unpickled in the worker, a socket of its own,
    bound (uvicorn listens on it once the worker's app has started)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    def __reduce__(self) -> tuple[Any, tuple[str, int]]:
        return bind_reusing_port, (self.host, self.port)


def check_port_free(host: str, port: int) -> None:
    """Fail, naming the address, when something listens there already (this server's workers included)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise GeoServerError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def run_workers(factory: str, workers: int, options: dict[str, Any]) -> None:
    """Run `workers` processes of the app that `factory` (an import path) builds, under uvicorn's supervisor, each
    listening on a socket of its own; `options` are uvicorn's."""
    config = Config(factory, factory=True, workers=workers, **options)
    check_port_free(config.host, config.port)
    own = SocketInWorker(config.host, config.port)
    Multiprocess(config, sockets=cast(list[socket.socket], [own])).run()
