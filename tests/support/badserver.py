"""A deliberately misbehaving HTTP server on 127.0.0.1 for capture-failure tests: it hangs,
streams endless gzip-looking bytes, answers HTML instead of a profile, reports the CPU profiler
as busy, or returns an error status, so the capture code's timeouts, size cap, content checks
and retries can be exercised against a real socket. Tests get it from the `bad_server` fixture.

How a request is answered is chosen by its first path segment when that names a mode, else by
the server's configured mode, so both of these work::

    BadServer(mode="busy", busy_count=2)     # <url>/debug/pprof/profile -> 500, 500, then 200
    BadServer()                              # <url>/hang/debug/pprof/profile -> hangs
                                             # <url>/status/404/debug/pprof/heap -> 404

Modes:

- ``ok``: 200 with VALID_PROFILE_GZ, a small, valid, gzipped pprof profile.
- ``hang`` (alias ``slow``): reads the request and sends nothing until the server stops (at most
  ``hang_seconds``); stop() is not held up by it.
- ``stall``: sends a 200 header and the first bytes of a gzip body, then nothing, like ``hang``.
- ``huge``: 200 without Content-Length, streaming ``huge_bytes`` (default 1 GiB) that start with
  the gzip magic 1f 8b; it stops writing when the client disconnects or the server stops.
- ``html``: 200 ``<html>not pprof</html>``.
- ``busy``: the first ``busy_count`` busy-mode requests get 500 with BUSY_MESSAGE (what Go's
  pprof says when a CPU profile is already running), the rest 200 with VALID_PROFILE_GZ.
- ``status``: ``status`` (or the code in ``/status/<code>/...``) with ``body``.

Every request's path and query, as sent, is appended to ``requests``.
"""

from __future__ import annotations

import contextlib
import gzip
import http
import http.server
import random
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest

BUSY_MESSAGE = b"Could not enable CPU profiling: cpu profiling already in use\n"
HTML_BODY = b"<html>not pprof</html>"
GZIP_MAGIC = b"\x1f\x8b"
MODES = ("ok", "hang", "slow", "stall", "huge", "html", "busy", "status")
HUGE_CHUNK_BYTES = 64 * 1024
DEFAULT_HUGE_BYTES = 1 << 30
DEFAULT_HANG_SECONDS = 600.0
# A client that stops reading must not pin a writer thread for ever.
SOCKET_TIMEOUT_SECONDS = 10.0


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _field_bytes(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _minimal_cpu_profile() -> bytes:
    """Encode a one-sample CPU profile (profile.proto) in main.busy, readable by go tool pprof."""
    strings = ["", "samples", "count", "cpu", "nanoseconds", "main.busy", "main.go"]
    index = {text: number for number, text in enumerate(strings)}

    def value_type(kind: str, unit: str) -> bytes:
        return _field_varint(1, index[kind]) + _field_varint(2, index[unit])

    sample = _field_bytes(1, _varint(1)) + _field_bytes(2, _varint(1) + _varint(10_000_000))
    line = _field_varint(1, 1) + _field_varint(2, 42)
    location = _field_varint(1, 1) + _field_varint(3, 0x1000) + _field_bytes(4, line)
    function = (
        _field_varint(1, 1)
        + _field_varint(2, index["main.busy"])
        + _field_varint(3, index["main.busy"])
        + _field_varint(4, index["main.go"])
    )
    message = (
        _field_bytes(1, value_type("samples", "count"))
        + _field_bytes(1, value_type("cpu", "nanoseconds"))
        + _field_bytes(2, sample)
        + _field_bytes(4, location)
        + _field_bytes(5, function)
        + b"".join(_field_bytes(6, text.encode()) for text in strings)
        + _field_varint(9, 1_700_000_000_000_000_000)
        + _field_varint(10, 1_000_000_000)
        + _field_bytes(11, value_type("cpu", "nanoseconds"))
        + _field_varint(12, 10_000_000)
    )
    return gzip.compress(message, mtime=0)


VALID_PROFILE_GZ = _minimal_cpu_profile()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    # HTTP/1.0: one request per connection and a body that ends when the connection closes.
    protocol_version = "HTTP/1.0"
    timeout = SOCKET_TIMEOUT_SECONDS

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.owner._untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_GET(self) -> None:
        self.server.owner._answer(self)

    def do_POST(self) -> None:
        self.server.owner._answer(self)

    def do_HEAD(self) -> None:
        self.server.owner._answer(self)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    owner: BadServer


class BadServer:
    """A misbehaving HTTP server on 127.0.0.1, serving from a background thread until stop()."""

    def __init__(
        self,
        mode: str = "ok",
        *,
        busy_count: int = 1,
        status: int = 503,
        body: bytes | None = None,
        huge_bytes: int = DEFAULT_HUGE_BYTES,
        hang_seconds: float = DEFAULT_HANG_SECONDS,
    ) -> None:
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self.configure(
            mode=mode,
            busy_count=busy_count,
            status=status,
            body=body,
            huge_bytes=huge_bytes,
            hang_seconds=hang_seconds,
        )
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="bad-server",
            daemon=True,
        )
        self._thread.start()

    def configure(
        self,
        mode: str,
        *,
        busy_count: int = 1,
        status: int = 503,
        body: bytes | None = None,
        huge_bytes: int = DEFAULT_HUGE_BYTES,
        hang_seconds: float = DEFAULT_HANG_SECONDS,
    ) -> None:
        """Set how requests without a mode prefix are answered; resets the busy counter."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
        with self._lock:
            self.mode = mode
            self.busy_count = busy_count
            self.busy_answered = 0
            self.status = status
            self.body = body
            self.huge_bytes = huge_bytes
            self.hang_seconds = hang_seconds

    def url_for(self, mode: str) -> str:
        """Base URL whose requests get `mode`, e.g. url_for("status/404") + "/debug/pprof/heap"."""
        return f"{self.url}/{mode.strip('/')}"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving, cut every open connection and wait for the handler threads."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout)
        with self._lock:
            connections = list(self._connections.items())
        for connection, _ in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for _, handler_thread in connections:
            handler_thread.join(timeout)

    def __enter__(self) -> BadServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"BadServer(url={self.url!r}, mode={self.mode!r})"

    # -- request handling ------------------------------------------------------------------

    def _track(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections[connection] = threading.current_thread()

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.pop(connection, None)

    def _route(self, path: str) -> tuple[str, int | None]:
        """The mode for a request path and, for /status/<code>/..., the code it names."""
        segments = path.split("?", 1)[0].strip("/").split("/")
        if segments[0] in MODES:
            code = None
            if segments[0] == "status" and len(segments) > 1 and segments[1].isdigit():
                code = int(segments[1])
            return segments[0], code
        return self.mode, None

    def _answer(self, handler: _Handler) -> None:
        self.requests.append(handler.path)
        mode, code = self._route(handler.path)
        try:
            if mode == "ok":
                self._send(handler, 200, VALID_PROFILE_GZ, "application/octet-stream")
            elif mode in ("hang", "slow"):
                self._stopping.wait(self.hang_seconds)
            elif mode == "stall":
                handler.send_response(200)
                handler.send_header("Content-Type", "application/octet-stream")
                handler.send_header("Content-Length", str(len(VALID_PROFILE_GZ) * 1000))
                handler.end_headers()
                handler.wfile.write(VALID_PROFILE_GZ[:10])
                handler.wfile.flush()
                self._stopping.wait(self.hang_seconds)
            elif mode == "huge":
                self._stream_huge(handler)
            elif mode == "html":
                self._send(handler, 200, HTML_BODY, "text/html; charset=utf-8")
            elif mode == "busy":
                with self._lock:
                    still_busy = self.busy_answered < self.busy_count
                    self.busy_answered += 1
                if still_busy:
                    self._send(handler, 500, BUSY_MESSAGE, "text/plain; charset=utf-8")
                else:
                    self._send(handler, 200, VALID_PROFILE_GZ, "application/octet-stream")
            elif mode == "status":
                status = code if code is not None else self.status
                body = self.body
                if body is None:
                    with contextlib.suppress(ValueError):
                        body = f"{status} {http.HTTPStatus(status).phrase}\n".encode()
                self._send(handler, status, body or f"{status}\n".encode(), "text/plain; charset=utf-8")
        except (ConnectionError, TimeoutError, OSError):
            pass  # the client went away or the server is stopping: nothing left to say

    @staticmethod
    def _send(handler: _Handler, status: int, body: bytes, content_type: str) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)

    def _stream_huge(self, handler: _Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.end_headers()
        # Random bytes after a gzip header: looks like a profile, compresses to nothing useful.
        filler = random.Random(0).randbytes(HUGE_CHUNK_BYTES)
        first = GZIP_MAGIC + struct.pack("<BBIBB", 8, 0, 0, 0, 255) + filler[10:]
        sent = 0
        chunk = first
        while sent < self.huge_bytes and not self._stopping.is_set():
            piece = chunk[: self.huge_bytes - sent]
            handler.wfile.write(piece)
            sent += len(piece)
            chunk = filler


@pytest.fixture
def bad_server() -> Iterator[BadServer]:
    """A started BadServer in mode "ok"; use path prefixes or configure() for other modes."""
    server = BadServer()
    try:
        yield server
    finally:
        server.stop()
