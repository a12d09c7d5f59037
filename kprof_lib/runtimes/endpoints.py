"""Small HTTP endpoints the long-running runtimes serve: `/healthz`, `/readyz` and, for the operator,
`/metrics` and its Alertmanager receiver. `Endpoints` answers GET (and POST, for routes that take a
body) on a fixed set of paths from a thread, over TLS when given a context; the operator and the
sidecar both build on it.
"""

from __future__ import annotations

import io
import logging
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("kprof.http")


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host or '0.0.0.0'}:{self.port}"


def parse_address(text: str) -> Address:
    """`HOST:PORT`, `:PORT` (every interface) or `[v6]:PORT`; ValueError with the reason otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. :8080 or 127.0.0.1:8080)")
    host = host.strip("[]")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: the port must be a number from 0 to 65535")
    return Address(host, int(port))


Route = Callable[[], tuple[int, str, bytes]]


@dataclass
class Request:
    """A POST as a route sees it: its headers, and its body read on demand, at most the bytes
    Content-Length announces (a route checks who is asking before it reads anything)."""

    headers: Message
    _body: io.BufferedIOBase
    read_bytes: int | None = field(default=None, init=False)

    def content_length(self) -> int | None:
        """The announced body size; None when absent or not a number."""
        text = self.headers.get("Content-Length")
        return int(text) if text is not None and text.strip().isdigit() else None

    def body(self, length: int) -> bytes:
        self.read_bytes = length
        return self._body.read(length)


# Status, content type, body and extra headers of the answer.
PostRoute = Callable[[Request], tuple[int, str, bytes, Mapping[str, str]]]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up or fails the TLS handshake is not worth a traceback on stderr.
        log.debug("connection from %s ended with an error", client_address[0], exc_info=True)


class Endpoints:
    """One HTTP server answering GET on `routes` and POST on `posts`; `address` is where it listens
    (the port it got when asked for port 0). With `tls`, only HTTPS is spoken; `timeout` bounds
    each read and write of a connection (a client that stalls is dropped)."""

    def __init__(
        self,
        address: Address,
        routes: Mapping[str, Route],
        name: str,
        *,
        posts: Mapping[str, PostRoute] | None = None,
        tls: ssl.SSLContext | None = None,
        timeout: float | None = None,
    ):
        self.name = name
        self._routes = dict(routes)
        self._posts = dict(posts or {})
        try:
            self._server = _Server((address.host, address.port), self._handler(timeout))
        except OSError as error:
            raise OSError(error.errno, f"cannot serve {name} on {address}: {error.strerror}") from None
        if tls is not None:
            # The handshake happens in the connection's own thread, not in the accepting one, so a
            # client that never completes it holds up nobody else.
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True, do_handshake_on_connect=False)
        self.scheme = "https" if tls is not None else "http"
        host, port = self._server.server_address[:2]
        self.address = Address(str(host), int(port))
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"kprof-http-{name}", daemon=True)

    def _handler(self, request_timeout: float | None) -> type[BaseHTTPRequestHandler]:
        routes, posts = self._routes, self._posts

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = request_timeout

            def setup(self) -> None:
                super().setup()
                if isinstance(self.connection, ssl.SSLSocket):
                    self.connection.do_handshake()

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                route = routes.get(path)
                if route is None:
                    self._missing(path, "GET")
                    return
                try:
                    status, content_type, body = route()
                except Exception:
                    log.exception("endpoint %s failed", self.path)
                    status, content_type, body = 500, "text/plain; charset=utf-8", b"internal error\n"
                self._answer(status, content_type, body)

            def do_POST(self) -> None:
                path = self.path.split("?", 1)[0]
                route = posts.get(path)
                if route is None:
                    self.close_connection = True  # its body is not read
                    self._missing(path, "POST")
                    return
                request = Request(self.headers, self.rfile)
                headers: Mapping[str, str] = {}
                try:
                    status, content_type, body, headers = route(request)
                except Exception:
                    log.exception("endpoint %s failed", self.path)
                    status, content_type, body = 500, "text/plain; charset=utf-8", b"internal error\n"
                if request.read_bytes is None or request.read_bytes != request.content_length():
                    # What is left of an unread body would be taken for the next request.
                    self.close_connection = True
                self._answer(status, content_type, body, headers)

            def _missing(self, path: str, method: str) -> None:
                other = posts if method == "GET" else routes
                if path in other:
                    allowed = "POST" if method == "GET" else "GET"
                    self._answer(405, "text/plain; charset=utf-8", f"use {allowed}\n".encode(), {"Allow": allowed})
                else:
                    self._answer(404, "text/plain; charset=utf-8", b"not found\n")

            def _answer(self, status: int, content_type: str, body: bytes, headers: Mapping[str, str] = {}) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                if self.close_connection:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # probes every few seconds would drown the decision log

        return Handler

    def start(self) -> None:
        self._thread.start()
        extra = {"action": "listen", "endpoint": self.name, "address": str(self.address), "scheme": self.scheme}
        paths = ", ".join(sorted([*self._routes, *(f"POST {path}" for path in self._posts)]))
        log.info("serving %s on %s://%s", paths, self.scheme, self.address, extra=extra)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def text(status: int, body: str) -> tuple[int, str, bytes]:
    return status, "text/plain; charset=utf-8", body.encode()


def health_routes(ready: Callable[[], tuple[bool, str]]) -> dict[str, Route]:
    """/healthz answers while the process serves; /readyz says 200 only when `ready()` is true,
    with its explanation either way."""

    def readyz() -> tuple[int, str, bytes]:
        ok, why = ready()
        return text(200 if ok else 503, f"{'ok' if ok else 'not ready'}: {why}\n")

    return {"/healthz": lambda: text(200, "ok\n"), "/readyz": readyz}
