"""Work for a client that left is cancelled, a client that stops reading is dropped: a small app behind
`CancelOnDisconnect`, served by uvicorn with this project's protocol (`geoserver.httpserver.server_options`), driven
by raw sockets."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from starlette.types import Message, Receive, Scope, Send

from geoserver.disconnects import WATCH, CancelOnDisconnect, DisconnectWatch
from tests.support.servers import LiveServer

SEND_TIMEOUT_S = 0.5
CHUNK = b"x" * (1 << 20)


class Handlers:
    """Slow answers that record what happened to them, for the test thread to wait on."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled = threading.Event()
        self.finished = threading.Event()
        self.received: list[Message] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        path = scope["path"]
        if path == "/ready":
            await _answer(send, b"ok")
            return
        self.started.set()
        try:
            if path == "/slow":  # works long before answering
                await asyncio.sleep(10)
            elif path == "/big":  # an answer far larger than any socket buffer
                await send({"type": "http.response.start", "status": 200, "headers": []})
                for _ in range(512):
                    await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
            elif path == "/upload":  # reads its body, then works
                while (message := await receive())["type"] == "http.request":
                    self.received.append(message)
                    if not message.get("more_body"):
                        break
                else:
                    self.received.append(message)
                    return
                await asyncio.sleep(10)
            elif path == "/after":  # answers at once, then finishes its own work
                await _answer(send, b"done")
                await asyncio.sleep(0.5)
            self.finished.set()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


async def _answer(send: Send, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def served() -> Iterator[tuple[Handlers, LiveServer]]:
    handlers = Handlers()
    with LiveServer(CancelOnDisconnect(handlers, send_timeout_s=SEND_TIMEOUT_S)) as server:
        yield handlers, server


def _connect(server: LiveServer, request: bytes, *, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket()
    if receive_buffer is not None:  # before connecting, so the window is small from the start
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(request)
    return sock


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode()


def _logged(caplog: pytest.LogCaptureFixture, text: str, seconds: float = 3) -> bool:
    """Whether `text` is logged by the disconnect watch within `seconds` (it comes just after the cancel)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if text in _messages(caplog):
            return True
        time.sleep(0.02)
    return False


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "geoserver.disconnects"]


def _until_closed(sock: socket.socket) -> None:
    """Read what was buffered until the server's side is gone (a timeout fails the test)."""
    sock.settimeout(5)
    try:
        while sock.recv(1 << 20):
            pass
    except ConnectionResetError:
        pass  # aborted: as good as an orderly end here


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="geoserver.disconnects")
    return caplog


def test_work_for_a_client_that_disconnected_is_cancelled(
    served: tuple[Handlers, LiveServer], logs: pytest.LogCaptureFixture
) -> None:
    handlers, server = served
    with _connect(server, _get("/slow")):
        assert handlers.started.wait(5)
        left = time.monotonic()
    assert handlers.cancelled.wait(2), "the work went on after its client left"
    assert time.monotonic() - left < 1.0 and not handlers.finished.is_set()
    assert _logged(logs, "client left GET /slow: its work was cancelled")


@pytest.mark.parametrize("pipelined", [False, True], ids=["alone", "with a request queued behind it"])
def test_a_client_that_stops_reading_is_dropped_after_the_send_timeout(
    served: tuple[Handlers, LiveServer], logs: pytest.LogCaptureFixture, pipelined: bool
) -> None:
    handlers, server = served
    logs.set_level(logging.INFO, logger="uvicorn.error")
    started = time.monotonic()
    # Pipelined: uvicorn has parsed the second request (its newest) while the first one's answer is stuck.
    request = _get("/big") + (_get("/ready") if pipelined else b"")
    with _connect(server, request, receive_buffer=4096) as sock:
        assert handlers.cancelled.wait(5), "a client that reads nothing kept its answer going"
        assert SEND_TIMEOUT_S <= time.monotonic() - started < 3
        assert _logged(logs, f"client stopped reading /big: dropped after {SEND_TIMEOUT_S:g} s")
        _until_closed(sock)
    assert not any(m.startswith("client left") for m in _messages(logs))
    # A drop is no server error: uvicorn logs none (the request was marked disconnected before its task stopped).
    assert not [r for r in logs.records if r.name == "uvicorn.error" and r.levelno >= logging.ERROR]


def test_a_request_body_is_read_whole_then_a_leaving_client_cancels_the_work(
    served: tuple[Handlers, LiveServer],
) -> None:
    handlers, server = served
    head = b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\n"
    with _connect(server, head + b"ab") as sock:
        assert handlers.started.wait(5)
        time.sleep(0.2)
        sock.sendall(b"cd")
        deadline = time.monotonic() + 5
        while b"".join(m.get("body", b"") for m in handlers.received) != b"abcd" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert b"".join(m.get("body", b"") for m in handlers.received) == b"abcd"
    assert handlers.cancelled.wait(2)  # the body was read, so the watch was armed: the client's leaving cancels


def test_a_client_leaving_during_its_upload_is_told_to_the_handler(served: tuple[Handlers, LiveServer]) -> None:
    handlers, server = served
    with _connect(server, b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab"):
        assert handlers.started.wait(5)
        time.sleep(0.2)
    deadline = time.monotonic() + 5
    while not any(m["type"] == "http.disconnect" for m in handlers.received) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [m["type"] for m in handlers.received][-1] == "http.disconnect"
    assert not handlers.cancelled.is_set()  # its own receive said so (the watch is not armed before the body ends)


def test_work_after_a_complete_answer_is_not_cancelled_when_the_client_closes(
    served: tuple[Handlers, LiveServer], logs: pytest.LogCaptureFixture
) -> None:
    handlers, server = served
    with _connect(server, _get("/after")) as sock:
        sock.settimeout(5)
        answer = b""
        while not answer.endswith(b"done"):
            chunk = sock.recv(4096)
            assert chunk, answer
            answer += chunk
    assert handlers.finished.wait(3) and not handlers.cancelled.is_set()
    assert _messages(logs) == []


def test_a_cancel_from_elsewhere_is_not_taken_for_the_client_leaving() -> None:
    """Only the watch's own cancel is swallowed: the server stopping a request (shutdown) still stops it."""
    watch = DisconnectWatch()
    scope: Scope = {"type": "http", "method": "POST", "path": "/upload", "headers": [], WATCH: watch}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(10)

    async def receive() -> Message:
        await asyncio.sleep(10)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        return None

    async def main() -> None:
        task = asyncio.create_task(CancelOnDisconnect(app, send_timeout_s=1)(scope, receive, send))
        await asyncio.sleep(0.05)
        watch.lost()  # the client went during its upload: the watch was never armed, so it cancelled nothing
        task.cancel()  # the server stops the request
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_without_the_protocol_requests_pass_through() -> None:
    """Served by anything else (no watch in the scope), the middleware only passes the request on."""
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await _answer(send, b"ok")

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    asyncio.run(CancelOnDisconnect(app, send_timeout_s=1)(scope, receive, send))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
